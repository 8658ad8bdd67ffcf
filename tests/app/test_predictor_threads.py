"""Where an upload is normalised: on the event loop up to INLINE_MAX_PIXELS, else in a
thread (docs/performance.md, "Small images on the event loop")."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from app import predictor
from app.config import Settings
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import png_bytes


def threaded_images(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, int]]]:
    """The format and size of each opened image the predictor hands to a thread from
    now on (run there at once, in this thread)."""
    threaded: list[tuple[str, tuple[int, int]]] = []

    async def in_a_thread(function, image: Image.Image):
        threaded.append((image.format, image.size))
        return function(image)

    monkeypatch.setattr(predictor, "run_in_threadpool", in_a_thread)
    return threaded


def threaded_sizes(monkeypatch: pytest.MonkeyPatch, sides: list[int]) -> list[int]:
    """The sides, of those given, whose JPEG the default settings send to a thread."""
    threaded = threaded_images(monkeypatch)
    reader = predictor.Predictor(None, Settings())  # _normalize() needs no network
    for side in sides:
        photo = stroke_digit(side).convert("RGB")
        asyncio.run(reader._normalize(png_bytes(photo, format="JPEG", quality=85)))
    return [width for _, (width, _) in threaded]


def test_a_300_px_photo_is_read_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its ~3-5 ms of work is under the GIL's 5 ms switch interval: a thread would
    shield nothing and, under load, wait for the GIL behind every small request."""
    assert threaded_sizes(monkeypatch, [64, 256, 300, 320]) == []


def test_larger_photos_are_read_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    side = int(Settings().inline_max_pixels ** 0.5) + 1
    assert threaded_sizes(monkeypatch, [side, 1000]) == [side, 1000]
