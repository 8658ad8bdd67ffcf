"""model.pairs: the pair reader's examples, and the shipped reader on held-out pairs."""

from __future__ import annotations

import numpy as np
import pytest

from app import pairs as app_pairs
from app.config import DEFAULT_MODEL_PATH
from model import data, pairs, realdigits
from tests.model.test_world import lower_bound  # a one-sided 99.5 % normal bound

HELD_OUT = 400  # examples of MNIST validation digits
CLAIMED = 0.95  # the card's held-out pairs accuracy (docs/model.md#pairs-for-read)


def test_examples_are_pairs_and_not_pairs(mnist: data.Mnist, real_digits) -> None:
    inputs, labels = pairs.examples(3, 200)
    assert inputs.shape == (200, *app_pairs.INPUT_SHAPE[:2]) and inputs.dtype == np.uint8
    assert 0.1 < np.mean(labels == app_pairs.NOT_A_PAIR) < 0.35  # one digit or three
    assert len(set(labels[labels < app_pairs.NOT_A_PAIR].tolist())) > 60  # most pairs drawn
    ink = inputs > 0
    rows, columns = ink.any(axis=2).sum(axis=1), ink.any(axis=1).sum(axis=1)
    assert (rows <= 24).all() and (columns <= 52).all()  # fitted into the ink box
    assert ((rows >= 22) | (columns >= 50)).all()  # and filling it one way
    again, _ = pairs.examples(3, 200)
    np.testing.assert_array_equal(inputs, again)  # a seed draws the same examples


def test_held_out_examples_are_of_validation_digits_only(mnist: data.Mnist) -> None:
    _, labels = pairs.examples(4, 50, held_out=True, letters=1.0)
    assert len(labels) == 50  # no pendigits file needed: MNIST's validation digits alone
    assert (labels < app_pairs.NOT_A_PAIR).mean() > 0.5  # and no letters


def test_letters_and_symbols_are_no_pair(mnist: data.Mnist, real_digits) -> None:
    inputs, labels = pairs.examples(6, 40, letters=1.0)
    assert (labels == app_pairs.NOT_A_PAIR).all()
    assert all(image.max() >= 128 for image in inputs)  # each holds a glyph
    _, without = pairs.examples(6, 40, letters=0.0)
    assert (without < app_pairs.NOT_A_PAIR).mean() > 0.6  # pairs, as before letters


@pytest.mark.slow
def test_the_shipped_pair_reader_reads_held_out_pairs(mnist: data.Mnist) -> None:
    reader = app_pairs.load(DEFAULT_MODEL_PATH.parent)
    assert reader is not None
    inputs, labels = pairs.examples(11, HELD_OUT, held_out=True)
    read = reader(inputs[..., np.newaxis] / np.float32(255)).argmax(axis=1)
    two = labels != app_pairs.NOT_A_PAIR
    share = float(np.mean(read[two] == labels[two]))
    print(f"pair reader: {share:.3f} of {two.sum()} held-out pairs")
    assert share >= lower_bound(CLAIMED, int(two.sum()))
    assert np.mean(read[~two] == app_pairs.NOT_A_PAIR) >= 0.9  # one digit or three: no pair


def test_the_card_says_how_it_was_made() -> None:
    import json

    card = json.loads((DEFAULT_MODEL_PATH.parent / app_pairs.CARD).read_text())
    assert card["command"] == "python -m model.pairs"
    assert card["data"]["mnist_split_seed"] == 1  # the digit network's held-out digits kept out
    assert card["held_out"]["pairs_accuracy"] >= CLAIMED


def test_pendigits_examples_need_the_uci_files(mnist: data.Mnist, tmp_path) -> None:
    with pytest.raises(realdigits.RealDigitsError):
        pairs.examples(5, 10, folders=(None, str(tmp_path)))
