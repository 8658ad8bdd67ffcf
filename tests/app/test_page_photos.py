"""A phone photo of a page lying on a desk: the desk around the page is no ink."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import paper
from tests.app.handwriting import draw_number


def on_a_desk(page: Image.Image, seed: int = 0, sides: str = "ltrb", depth: float = 0.25) -> bytes:
    """``page`` (grey, dark ink on white) as a phone photographs it lying on a brown
    desk: tinted paper, light falling across it, ``depth`` of its height of desk on
    each of ``sides`` (left, top, right, bottom; the page runs off the frame on the
    others), turned a degree, noise, JPEG."""
    rng = np.random.default_rng(seed)
    ink = 1.0 - np.asarray(page, dtype=np.float32) / 255.0
    height, width = ink.shape
    light = np.linspace(0, 30, width)[None, :, None]
    sheet = np.array([225.0, 220.0, 205.0]) - light
    sheet = sheet * (1 - ink[..., None]) + np.array([30.0, 30.0, 70.0]) * ink[..., None]
    left, top, right, bottom = ((side in sides) * round(depth * height) for side in "ltrb")
    desk = np.empty((height + top + bottom, width + left + right, 3), dtype=np.float32)
    desk[:] = (110.0, 80.0, 55.0)
    desk[top : top + height, left : left + width] = sheet
    desk += rng.normal(0, 3, desk.shape)
    image = Image.fromarray(np.clip(desk, 0, 255).astype(np.uint8), "RGB")
    image = image.rotate(1.0, resample=Image.Resampling.BICUBIC, fillcolor=(110, 80, 55))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def post(client: TestClient, path: str, content: bytes) -> dict:
    response = client.post(path, files={"file": ("photo.jpg", content, "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("digit", ["2", "4", "7"])
def test_a_digit_on_a_page_on_a_desk_is_read(client: TestClient, digit: str) -> None:
    page, _ = draw_number(digit, size=120, margin=60)
    assert post(client, "/predict", on_a_desk(page))["digit"] == int(digit)


def test_a_number_on_a_page_on_a_desk_is_read(client: TestClient) -> None:
    page, boxes = draw_number("2574", size=100, margin=50)
    answer = post(client, "/read", on_a_desk(page))
    assert answer["number"] == "2574"
    # Boxes in the photo's pixels: the page lies a quarter of its height in.
    pad = page.height // 4
    for digit, (left, top, right, bottom) in zip(answer["digits"], boxes, strict=True):
        assert abs(digit["box"]["x"] - (left + pad)) < 0.2 * (right - left)
        assert abs(digit["box"]["y"] - (top + pad)) < 0.2 * (bottom - top)


@pytest.mark.parametrize("sides", ["l", "r", "t", "lr"])
def test_a_number_on_a_page_running_off_the_frame_is_read(client: TestClient, sides: str) -> None:
    """The desk along one side or two, the border mostly the page's: a strip of desk
    at the left or right was read as a 1 ("12574", "25741")."""
    page, _ = draw_number("2574", size=60, margin=20)
    photo = on_a_desk(page, sides=sides, depth=0.15)
    assert post(client, "/read", photo)["number"] == "2574"


def page_and_desk(ink: bool = True) -> np.ndarray:
    grey = np.full((200, 300), 90.0, dtype=np.float32)  # the desk
    grey[40:160, 50:250] = 220.0  # the page
    if ink:
        grey[80:120, 140:146] = 30.0  # a stroke on it
    return grey


def test_the_desk_around_a_page_is_painted_as_the_page() -> None:
    grey = page_and_desk()
    painted = paper.on_the_page(grey)
    assert painted is not grey
    assert np.all(painted[:30] == 220.0) and np.all(painted[:, :40] == 220.0)  # no desk
    np.testing.assert_array_equal(painted[80:120, 130:156], grey[80:120, 130:156])  # the ink


@pytest.mark.parametrize(
    "grey",
    [
        np.full((200, 300), 220.0, dtype=np.float32),  # a page filling the frame ...
        page_and_desk(ink=False),  # a page on the desk with nothing written on it
        255.0 - page_and_desk(),  # light strokes on dark paper (a blackboard, dark mode)
    ],
    ids=["page filling the frame", "blank page", "dark paper"],
)
def test_what_is_no_page_on_a_desk_is_left_as_it_is(grey: np.ndarray) -> None:
    if grey.min() == grey.max():
        grey[90:110, 140:146] = 30.0  # ... with a stroke
    assert paper.on_the_page(grey) is grey


def test_the_desk_along_one_side_is_painted_as_the_page() -> None:
    grey = page_and_desk()[40:160, :250]  # the page runs off the frame but at the left
    painted = paper.on_the_page(grey)
    assert painted is not grey
    assert np.all(painted[:, :40] == 220.0)
    np.testing.assert_array_equal(painted[:, 130:156], grey[:, 130:156])


def shadowed_side() -> np.ndarray:
    """A page whose left third lies in a shadow as dark as a desk, a stroke in it."""
    grey = np.full((120, 250), 220.0, dtype=np.float32)
    grey[:, :80] = 110.0
    grey[40:80, 30:36] = 30.0  # a stroke in the shadow
    grey[40:80, 140:146] = 30.0  # and one in the light
    return grey


def stroke_touching_the_frame() -> np.ndarray:
    """A digit box-normalised and enlarged (64 px): its bar runs along the top side."""
    grey = np.full((64, 64), 255.0, dtype=np.float32)
    grey[:14, :] = 0.0  # a 7's bar touching the frame
    grey[30:50, 28:40] = 0.0  # another stroke apart from it
    return grey


def text_cut_by_the_frame() -> np.ndarray:
    """Lines of small text running off the frame both sides: words of anti-aliased
    strokes a pixel thick, grey on either side."""
    grey = np.full((200, 300), 220.0, dtype=np.float32)
    words = (np.arange(300) % 12 < 8) | (np.arange(300) >= 296)
    for row in range(5, 200, 12):
        grey[row - 1 : row + 2, words] = 120.0
        grey[row, words] = 20.0
    return grey


@pytest.mark.parametrize(
    "grey",
    [shadowed_side(), stroke_touching_the_frame(), text_cut_by_the_frame()],
    ids=["a shadowed side with a stroke in it", "a stroke touching the frame", "text cut"],
)
def test_a_dark_side_that_may_be_ink_is_no_desk(grey: np.ndarray) -> None:
    assert paper.on_the_page(grey) is grey
