"""The service on handwriting in the world: the targets of `python -m model.world`.

Each kind is measured on a sample, so each target is checked against the lower end
of what that sample size allows (a one-sided 99.5 % normal bound): a real
regression of a point or more fails, sampling noise does not.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model import data, realdigits, uploads, world
from tests.conftest import fonts

PER_KIND = 150
# What docs/model.md claims per kind (share read correctly), from `python -m model.world
# --count 300` on the shipped model; below the targets where the table says so.
CLAIMED = {
    "16x16": 0.97,
    "hairline": 0.98,
    "faint photo": 0.98,
    "pendigits": 0.98,
    "optdigits": 0.99,
    "load_digits": 0.99,
}
CLAIMED_OTHERWISE = 0.98  # tight crops, cut from a line, marker, slant
MAX_REFUSED = 0.03  # real digits refused, per kind
MAX_NON_DIGITS_ANSWERED = 0.05  # per kind of non-digit
MIN_AUROC = 0.99


def lower_bound(target: float, count: int) -> float:
    return target - 2.576 * math.sqrt(target * (1 - target) / count)


def upper_bound(target: float, count: int) -> float:
    return target + 2.576 * math.sqrt(target * (1 - target) / count)


def target_for(kind: str) -> float:
    return next((share for prefix, share in CLAIMED.items() if prefix in kind), CLAIMED_OTHERWISE)


@pytest.fixture(scope="module")
def report(client: TestClient, mnist: data.Mnist, real_digits: realdigits.RealDigits) -> dict:
    measuring_fonts = fonts(training=False)
    read = world.service_reader(client.app.state.predictor.classifier)
    digits = uploads.held_out_digits(mnist)
    samples = itertools.chain(
        world.rendered(digits, PER_KIND, seed=3),
        world.real(real_digits, PER_KIND),
        world.not_digits(PER_KIND // 2, 3, digits.images, measuring_fonts),
    )
    result = world.measure(samples, read)
    world.print_report(result)
    return result


@pytest.mark.slow
def test_every_kind_of_handwriting_is_read(report: dict) -> None:
    digit_kinds = {
        kind: row for kind, row in report.items() if kind != "auroc" and "accuracy" in row
    }
    assert len(digit_kinds) >= 20
    low = {
        kind: row["accuracy"]
        for kind, row in digit_kinds.items()
        if row["accuracy"] < lower_bound(target_for(kind), row["count"])
    }
    assert not low, low
    refused = {
        kind: row["refused"]
        for kind, row in digit_kinds.items()
        if row["refused"] > upper_bound(MAX_REFUSED, row["count"])
    }
    assert not refused, refused


@pytest.mark.slow
def test_non_digits_are_refused(report: dict) -> None:
    answered = {
        kind: row["answered"]
        for kind, row in report.items()
        if kind != "auroc"
        and "answered" in row
        and row["answered"] > upper_bound(MAX_NON_DIGITS_ANSWERED, row["count"])
    }
    assert not answered, answered
    assert report["auroc"] >= MIN_AUROC


@pytest.mark.slow
def test_the_second_look_reads_more_of_mnist_test(client: TestClient, mnist: data.Mnist) -> None:
    """``--second-look``: the MNIST test set read with it, against the network alone."""
    report = world.second_look_on_mnist_test(mnist, client.app.state.predictor.classifier)
    alone, looked = report["network alone"], report["with the second look"]
    assert report["count"] == 10_000 and 0 < report["looked at again"] < 200
    assert looked["accuracy"] > alone["accuracy"] and looked["accuracy"] >= 0.996
    assert looked["refused"] <= 0.001 and looked["ece"] <= 0.005


def test_auroc_counts_ties_half() -> None:
    """Each positive against each negative: above counts 1, a tie half."""
    assert world.auroc(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0])) == 4.5 / 6
    assert world.auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.8])) == 5.5 / 6
    assert world.auroc(np.array([0.0]), np.array([1.0])) == 0.0
