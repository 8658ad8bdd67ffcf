"""A micro-batch reads its small clean PNGs itself (``Predictor._read_batch``): every
upload of a batch gets the answer it gets alone, whichever path reads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app import fast_path, preprocessing
from app.config import Settings
from app.inference import load_classifier
from app.predictor import Predictor, Result
from tests.app.test_fast_path import mnist_like
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def reader(model_path: Path) -> Predictor:
    return Predictor(load_classifier(model_path), Settings(model_path=model_path))


def uploads() -> dict[str, bytes]:
    digit = mnist_like(5)
    corrupt = bytearray(png_bytes(mnist_like(6)))
    corrupt[40] ^= 0xFF  # the CRC no longer matches: the general path's error
    transparent = np.zeros((28, 28, 4), dtype=np.uint8)
    transparent[..., 3] = np.maximum(digit, 1)  # the same digit, its ink in the alpha channel
    return {
        "fast": png_bytes(digit),
        "fast, light paper": png_bytes(255 - mnist_like(8)),
        "transparent (general path)": png_bytes(transparent),
        "JPEG (general path)": png_bytes(stroke_digit(120).convert("RGB"), format="JPEG"),
        "blank": png_bytes(np.full((28, 28), 200, dtype=np.uint8)),
        "corrupt": bytes(corrupt),
    }


def outcome(result: Result | BaseException) -> tuple:
    if isinstance(result, BaseException):
        return type(result), str(result)
    return result.digit, result.probabilities.tolist(), result.digit_score


def read_all(reader: Predictor, contents: list[bytes], together: bool) -> list:
    async def main() -> list:
        await reader.start()
        try:
            if together:  # queued in the same turn: one micro-batch
                calls = (reader.predict(content, reject=False) for content in contents)
                return await asyncio.gather(*calls, return_exceptions=True)
            answers = []
            for content in contents:
                try:
                    answers.append(await reader.predict(content, reject=False))
                except preprocessing.PreprocessingError as error:
                    answers.append(error)
            return answers
        finally:
            await reader.stop()

    return asyncio.run(main())


def test_each_upload_of_a_batch_gets_its_answer_alone(reader: Predictor) -> None:
    named = uploads()
    assert [fast_path.may_take(content) for content in named.values()] == [
        True, True, True, False, True, True,
    ]  # fmt: skip
    together = read_all(reader, list(named.values()), together=True)
    alone = read_all(reader, list(named.values()), together=False)
    for name, with_others, by_itself in zip(named, together, alone, strict=True):
        assert outcome(with_others) == outcome(by_itself), name
    answered = dict(zip(named, together, strict=True))
    assert isinstance(answered["blank"], preprocessing.NoDigitError)
    assert isinstance(answered["corrupt"], preprocessing.PreprocessingError)
    assert outcome(answered["fast"])[0] == outcome(answered["transparent (general path)"])[0]


def test_the_fast_path_failing_on_one_upload_fails_none_of_the_others(
    reader: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = uploads()
    bad = named["fast, light paper"]
    real, batches = fast_path.inputs_and_inks, []

    def failing(contents: list[bytes], limits) -> list:
        batches.append(len(contents))
        if bad in contents:
            raise RuntimeError("a bug in the fast path")
        return real(contents, limits)

    expected = read_all(reader, list(named.values()), together=True)
    monkeypatch.setattr(fast_path, "inputs_and_inks", failing)
    together = read_all(reader, list(named.values()), together=True)
    for name, got, want in zip(named, together, expected, strict=True):
        assert outcome(got) == outcome(want), name  # the general path read the bad one
    assert batches[0] == 5 and batches[1:] == [1] * 5  # read together, then one by one
