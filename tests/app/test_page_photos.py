"""A phone photo of a page lying on a desk: the desk around the page is no ink."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import desk
from tests.app.handwriting import draw_number


def shade(shape: tuple[int, int], angle: float, depth: float, soft: float) -> np.ndarray:
    """The light left under a shadow taking ``depth`` of it over the half of an image
    of ``shape`` that lies towards ``angle`` (degrees), its edge ``soft`` px wide,
    through the middle."""
    height, width = shape
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    towards = np.cos(np.radians(angle)) * (columns - width / 2) + np.sin(np.radians(angle)) * (
        rows - height / 2
    )
    return 1.0 - depth / (1.0 + np.exp(np.clip(-towards / soft, -50, 50)))


def on_a_desk(
    page: Image.Image,
    seed: int = 0,
    sides: str = "ltrb",
    depth: float = 0.25,
    shadow: float | None = None,
) -> bytes:
    """``page`` (grey, dark ink on white) as a phone photographs it lying on a brown
    desk: tinted paper, light falling across it, ``depth`` of its height of desk on
    each of ``sides`` (left, top, right, bottom; the page runs off the frame on the
    others), a shadow over half of page and desk alike towards ``shadow`` (degrees),
    if given, turned a degree, noise, JPEG."""
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
    if shadow is not None:
        desk *= shade(desk.shape[:2], shadow, depth=0.4, soft=10.0)[..., np.newaxis]
    desk += rng.normal(0, 3, desk.shape)
    image = Image.fromarray(np.clip(desk, 0, 255).astype(np.uint8), "RGB")
    fill = tuple(int(level) for level in desk[0, 0])
    image = image.rotate(1.0, resample=Image.Resampling.BICUBIC, fillcolor=fill)
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


@pytest.mark.parametrize("angle", [0, 100, 200, 300])
def test_a_page_on_a_desk_in_shadow_is_read(client: TestClient, angle: int) -> None:
    """A shadow over page and desk alike hides the page's edge in grey levels (the
    desk's lit part as light as the page's shaded part); their colours tell them
    apart: all eight had been refused."""
    page, _ = draw_number("2574", size=80, margin=40)
    assert post(client, "/read", on_a_desk(page, sides="lt", shadow=angle))["number"] == "2574"
    page, _ = draw_number("4", size=120, margin=60)
    assert post(client, "/predict", on_a_desk(page, sides="rb", shadow=angle))["digit"] == 4


def page_and_desk(ink: bool = True) -> np.ndarray:
    grey = np.full((200, 300), 90.0, dtype=np.float32)  # the desk
    grey[40:160, 50:250] = 220.0  # the page
    if ink:
        grey[80:120, 140:146] = 30.0  # a stroke on it
    return grey


def test_the_desk_around_a_page_is_painted_as_the_page() -> None:
    grey = page_and_desk()
    painted = desk.on_the_page(grey)
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
    assert desk.on_the_page(grey) is grey


def test_the_desk_along_one_side_is_painted_as_the_page() -> None:
    grey = page_and_desk()[40:160, :250]  # the page runs off the frame but at the left
    painted = desk.on_the_page(grey)
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
    assert desk.on_the_page(grey) is grey


def test_a_desk_in_shadow_is_told_by_its_colour() -> None:
    """A shadow over the right third: the lit desk (150) lighter than the shaded page
    (132), a stroke in the light and one in the shade; by its levels the shaded page
    may be desk, so no page is found; a brown desk and a white page tell it."""
    grey = page_and_desk(ink=False)
    grey[grey == 90.0] = 150.0  # a light desk
    grey[80:120, 100:106] = grey[80:120, 220:226] = 30.0
    desk_pixels = grey == 150.0
    grey[:, 200:] *= 0.6  # the shadow: the page 132 there, the desk 90, the stroke 18
    colour = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    colour[desk_pixels] *= np.array([1.2, 0.9, 0.6], dtype=np.float32)  # brown
    assert desk.on_the_page(grey) is grey  # by its levels, no page
    painted = desk.on_the_page(grey, colour=Image.fromarray(colour.astype(np.uint8)))
    assert np.all(painted[:30, :190] == 220.0) and np.all(painted[:30, 210:] == 132.0)
    np.testing.assert_array_equal(painted[60:140, 70:240], grey[60:140, 70:240])  # the ink


def test_what_is_no_desk_by_its_colour_is_left_as_it_is() -> None:
    """A yellow note running off the frame on a white desk (the note is no desk: 0.82 of
    the white's level, not 0.8), and red strokes touching the frame (not a tenth of
    the border, and thin)."""
    note = np.full((200, 300), 250.0, dtype=np.float32)
    note[:, 170:] = 205.0  # 45 levels under the desk, 0.82 of it
    note[100:140, 220:226] = 30.0
    colour = np.repeat(note[..., np.newaxis], 3, axis=-1)
    colour[:, 170:] *= np.array([1.15, 1.1, 0.6], dtype=np.float32)
    colour = Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8))
    assert desk.on_the_page(note, colour=colour) is note
    strokes = np.full((200, 300), 220.0, dtype=np.float32)
    strokes[:120, 140:150] = 60.0  # a red stroke from the top side ...
    strokes[110:120, 60:150] = 60.0  # ... and its bar
    colour = np.repeat(strokes[..., np.newaxis], 3, axis=-1)
    colour[strokes == 60.0] = (200.0, 30.0, 30.0)
    assert desk.on_the_page(strokes, colour=Image.fromarray(colour.astype(np.uint8))) is strokes
