"""POST /read over HTTP (TestClient): a whole number in one image."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app import preprocessing, rejection
from tests.app.handwriting import draw_number
from tests.app.test_segmentation import finely_cut
from tests.conftest import png_bytes, sheared


def upload(content: bytes, name: str = "number.png", content_type: str = "image/png") -> dict:
    return {"file": (name, content, content_type)}


def read(client: TestClient, image: Image.Image, format: str = "PNG", **options) -> dict:
    response = client.post("/read", files=upload(png_bytes(image, format, **options)))
    assert response.status_code == 200, response.text
    return response.json()


def centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def check_boxes(body: dict, drawn: list[tuple[float, float, float, float]]) -> None:
    """Each digit's box holds the centre of the digit drawn there, and no other's."""
    assert len(body["digits"]) == len(drawn)
    for digit, (left, top, right, bottom) in zip(body["digits"], drawn, strict=True):
        x, y = centre(digit["box"])
        assert left <= x <= right and top <= y <= bottom, (digit["box"], (left, top, right, bottom))


def test_reading_body(client: TestClient) -> None:
    image, drawn = draw_number("2025")
    body = read(client, image)
    assert set(body) == {"number", "confidence", "digits", "other", "digit_score", "model_version"}
    assert rejection.READ_BELOW < body["digit_score"] <= 1
    assert body["number"] == "2025"
    assert body["model_version"] == client.get("/model").json()["version"]
    assert body["other"] == []
    for item, expected in zip(body["digits"], "2025", strict=True):
        probabilities = item["probabilities"]
        assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 1e-4
        assert item["digit"] == int(np.argmax(probabilities)) == int(expected)
        assert item["confidence"] == probabilities[item["digit"]]
        assert "input_png" not in item
    assert body["confidence"] == pytest.approx(np.prod([d["confidence"] for d in body["digits"]]))
    check_boxes(body, drawn)


def test_digits_cut_into_many_pieces_read_whole(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uneven strokes can cut a digit into more pieces than a run of them may have
    (MAX_PIECES): the digit whole is still read, not two digits made of its parts."""
    finely_cut(monkeypatch)
    image, drawn = draw_number("2025", gap=0.5)
    body = read(client, image)
    assert body["number"] == "2025"
    check_boxes(body, drawn)


def test_every_digit_we_draw(client: TestClient) -> None:
    image, drawn = draw_number("0123457", gap=0.5)
    body = read(client, image)
    assert body["number"] == "0123457"
    check_boxes(body, drawn)


def test_digits_of_two_strokes_are_one_digit(client: TestClient) -> None:
    """The 4's two strokes and the 5's bar do not touch the rest of their digit."""
    image, drawn = draw_number("4545", gap=0.15)
    body = read(client, image)
    assert body["number"] == "4545"
    check_boxes(body, drawn)


@pytest.mark.parametrize("gap", [2.0, 0.6, 0.12])
def test_gaps_of_any_width(client: TestClient, gap: float) -> None:
    image, drawn = draw_number("7102", gap=gap)
    body = read(client, image)
    assert body["number"] == "7102"
    check_boxes(body, drawn)


@pytest.mark.parametrize(("text", "gap"), [("11", -0.35), ("17", -0.3), ("12", -0.3)])
def test_a_narrow_touching_pair_is_split(client: TestClient, text: str, gap: float) -> None:
    """A 1 leaning into its neighbour: one component no wider than a wide digit. The
    "12" read as one 2 until the network's "whole" output scored the candidates."""
    image, drawn = draw_number(text, gap=gap)
    body = read(client, image)
    assert body["number"] == text
    check_boxes(body, drawn)


def test_overlapping_digits_part_along_a_bent_cut(client: TestClient) -> None:
    """A 4 whose bar runs into the 5 beside it: cut straight, the 5 lost its bar
    and the 4 read as 1 ("15"); the cut bent around the bar parts them."""
    image, drawn = draw_number("45", gap=-0.3)
    body = read(client, image)
    assert body["number"] == "45"
    check_boxes(body, drawn)


def test_groups_apart_are_one_number(client: TestClient) -> None:
    """A phone number's spaces do not break the reading."""
    left, _ = draw_number("01", gap=0.3)
    right, _ = draw_number("234", gap=0.3)
    image = Image.new("L", (left.width + right.width + 200, left.height), 255)
    image.paste(left, (0, 0))
    image.paste(right, (left.width + 200, 0))
    assert read(client, image)["number"] == "01234"


def test_boxes_are_in_the_uploaded_pixels(client: TestClient) -> None:
    """An image over 512 px is read reduced; the boxes are scaled back."""
    image, drawn = draw_number("2047", size=400, pen=40, margin=150)
    assert max(image.size) > 1500
    body = read(client, image)
    assert body["number"] == "2047"
    check_boxes(body, drawn)
    for digit, (_, top, _, bottom) in zip(body["digits"], drawn, strict=True):
        box = digit["box"]
        assert abs(box["height"] - (bottom - top)) < 0.15 * (bottom - top)


def test_boxes_follow_exif_orientation(client: TestClient) -> None:
    """Stored turned a quarter with orientation 6: the boxes are those of the upright image."""
    image, drawn = draw_number("2047")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = image.transpose(Image.Transpose.ROTATE_90)
    body = read(client, stored.convert("RGB"), "JPEG", exif=exif, quality=95)
    assert body["number"] == "2047"
    check_boxes(body, drawn)


def test_include_input_returns_each_digit_as_the_network_saw_it(client: TestClient) -> None:
    image, _ = draw_number("17")
    response = client.post("/read", files=upload(png_bytes(image)), params={"include_input": True})
    digits = response.json()["digits"]
    assert len(digits) == 2
    for digit in digits:
        seen = Image.open(io.BytesIO(base64.b64decode(digit["input_png"])))
        assert seen.format == "PNG" and seen.size == (28, 28) and seen.mode == "L"
        pixels = np.asarray(seen)
        assert pixels.max() == 255 and pixels[0].max() == 0


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
@pytest.mark.parametrize(("size", "slant"), [(40, 0.0), (80, -0.3), (80, 0.0)])
def test_one_digit_is_read_as_predict_reads_it(
    client: TestClient, size: int, slant: float, format: str
) -> None:
    """A line of one digit: /predict's probabilities and input for the image (its
    second look included), /read's box. (The first two PNGs read a 1 at 0.66 and 0.60
    where /predict is sure of it at 0.93 and 0.76 until /read asked /predict.) A JPEG
    is read from the image /read decoded, not by the small PNGs' fast path."""
    image, drawn = draw_number("1", size=size)
    content = png_bytes(sheared(image, slant) if slant else image, format, quality=95)
    files = upload(content, content_type=f"image/{format.lower()}")
    expected = client.post("/predict", files=files, params={"include_input": True}).json()
    response = client.post("/read", files=files, params={"include_input": True})
    [digit] = response.json()["digits"]
    assert digit["digit"] == expected["digit"] == 1
    assert digit["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    assert digit["input_png"] == expected["input_png"]
    if not slant:
        check_boxes(response.json(), drawn)


def test_one_digit_is_decoded_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """/predict's reading of a line of one digit starts from the image /read decoded."""
    decodes = []
    decode = preprocessing.decode
    monkeypatch.setattr(preprocessing, "decode", lambda image: decodes.append(1) or decode(image))
    image, _ = draw_number("4", size=300, margin=200)
    files = upload(png_bytes(image.convert("RGB"), "JPEG", quality=90), content_type="image/jpeg")
    assert client.post("/read", files=files).json()["number"] == "4"
    assert len(decodes) == 1


@pytest.mark.parametrize("text", ["4", "47", "305"])
def test_a_hairline_broken_into_dashes_is_read(client: TestClient, text: str) -> None:
    """A pen a pixel wide, its strokes broken every few pixels (a fine nib scanned
    faintly): each dash had been a component of its own, read as 1s ("61111" for a 4)
    or refused, until hairlines were grown before grouping (segmentation.HAIRLINE_PEN)."""
    image, drawn = draw_number(text, pen=1)
    pixels = np.asarray(image).copy()
    rows, columns = np.indices(pixels.shape)
    pixels[(rows + columns) % 7 < 2] = 255
    body = read(client, Image.fromarray(pixels))
    assert body["number"] == text
    check_boxes(body, drawn)


def test_a_decimal_point_is_listed_apart(client: TestClient) -> None:
    image, drawn = draw_number("275", point_after=1)
    body = read(client, image)
    assert body["number"] == "275"
    [point] = body["other"]
    assert point["kind"] == "point"
    x, _ = centre(point["box"])
    assert drawn[0][2] < x < drawn[1][0]


@pytest.mark.parametrize("height", [0.2, 0.38])
def test_a_comma_is_listed_apart(client: TestClient, height: float) -> None:
    """A comma dropping below the line, up to MARK_HEIGHT (0.45) of the digits' height:
    a mark, not a digit (one 0.38 high read as a 1 with MARK_HEIGHT at 0.35)."""
    image, drawn = draw_number("1250", gap=0.45)
    size = drawn[0][3] - drawn[0][1]
    x, top = (drawn[0][2] + drawn[1][0]) / 2, drawn[0][3] - 0.08 * size
    ImageDraw.Draw(image).line([(x, top), (x - 0.06 * size, top + height * size)], fill=0, width=10)
    body = read(client, image)
    assert body["number"] == "1250"
    [comma] = body["other"]
    assert comma["kind"] in ("point", "mark")
    assert drawn[0][2] < centre(comma["box"])[0] < drawn[1][0]


def test_rules_under_and_around_the_digits_are_no_digits(client: TestClient) -> None:
    image, drawn = draw_number("2025", gap=0.4)
    draw = ImageDraw.Draw(image)
    bottom = drawn[0][3] + 4
    draw.line([(0, bottom), (image.width, bottom)], fill=0, width=4)  # ruled paper, touching
    draw.line([(0, 12), (image.width, 14)], fill=0, width=3)  # the rule above, apart
    body = read(client, image)
    assert body["number"] == "2025"
    check_boxes(body, drawn)
    assert body["other"] == []


@pytest.mark.parametrize("turn", [-3.0, 3.0])
@pytest.mark.parametrize("cropped", [False, True], ids=["with paper round", "cropped close"])
def test_the_rules_of_a_turned_page_are_no_digits(
    client: TestClient, turn: float, cropped: bool
) -> None:
    """Ruled paper photographed askew: the rules rise across the image, past the row
    or two a level rule may wobble, and still are no digits; cropped close to the
    writing too, where they run past it by less than a rule of one digit's upload."""
    image, drawn = draw_number("2025", gap=0.4)
    if cropped:
        left, right = drawn[0][0] - 6, drawn[-1][2] + 6
        image = image.crop((left, 0, right, image.height))
        drawn = [(a - left, b, c - left, d) for a, b, c, d in drawn]
    draw = ImageDraw.Draw(image)
    rise = math.tan(math.radians(turn)) * image.width / 2
    for y in (drawn[0][3] + 6, drawn[0][1] - 10):  # the baseline's rule and the one above
        draw.line([(0, y - rise), (image.width, y + rise)], fill=110, width=3)
    body = read(client, image)
    assert body["number"] == "2025"
    check_boxes(body, drawn)
    assert body["other"] == []


@pytest.mark.parametrize("past", [0, 14], ids=["within", "the last digit written past"])
def test_a_forms_boxes_round_the_digits_are_no_digits(client: TestClient, past: int) -> None:
    """One digit to a box, side by side (a postcode on a form): the boxes' sides,
    shorter than the image is high, are no 1s, even where a digit runs past its box."""
    image, drawn = draw_number("2745", gap=0.4)
    draw = ImageDraw.Draw(image)
    advance = drawn[1][0] - drawn[0][0]
    top, bottom = drawn[0][1] - 14, drawn[0][3] + 14
    sides = [
        drawn[0][0] - (advance - (drawn[0][2] - drawn[0][0])) / 2 + i * advance for i in range(5)
    ]
    sides[-1] -= past
    for x in sides:
        draw.line([(x, top), (x, bottom)], fill=90, width=2)
    for y in (top, bottom):
        draw.line([(sides[0], y), (sides[-1], y)], fill=90, width=2)
    assert read(client, image)["number"] == "2745"


def test_a_speck_beside_digits_that_all_sit_on_a_rule(client: TestClient) -> None:
    """The digits and the rule are one wide blob: a speck must not pass for the line."""
    image, drawn = draw_number("2025", gap=0.4)
    draw = ImageDraw.Draw(image)
    bottom = drawn[0][3] - 2
    draw.line([(0, bottom), (image.width, bottom)], fill=0, width=6)  # through every foot
    x, y = (drawn[1][2] + drawn[2][0]) / 2, drawn[0][1] + 30
    draw.ellipse((x - 4, y - 3, x + 4, y + 3), fill=0)  # a speck between two digits
    body = read(client, image)
    assert body["number"] == "2025"
    check_boxes(body, drawn)


def test_more_than_max_digits_is_422(client: TestClient) -> None:
    image, _ = draw_number("1" * 40, size=40, gap=0.4, margin=10)
    response = client.post("/read", files=upload(png_bytes(image)))
    assert response.status_code == 422
    assert "MAX_DIGITS" in response.json()["detail"] and "32" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "status", "detail"),
    [
        (b"", 400, "empty"),
        (b"just some text", 415, "not an image"),
        (png_bytes(Image.new("L", (300, 100), 255)), 422, "No digit found"),
        (png_bytes(Image.new("1", (12000, 12000))), 413, "limit is 16,000,000"),
    ],
)
def test_client_errors_as_for_predict(
    client: TestClient, content: bytes, status: int, detail: str
) -> None:
    response = client.post("/read", files=upload(content))
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert client.get("/health/ready").status_code == 200


def test_a_dash_between_groups_is_listed_apart(client: TestClient) -> None:
    left, drawn = draw_number("12", gap=0.3)
    right, _ = draw_number("70", gap=0.3)
    image = Image.new("L", (left.width + right.width, left.height), 255)
    image.paste(left, (0, 0))
    image.paste(right, (left.width, 0))
    middle = drawn[0][1] + 50
    dash = [(left.width - 25, middle), (left.width + 25, middle)]
    ImageDraw.Draw(image).line(dash, fill=0, width=9)
    body = read(client, image)
    assert body["number"] == "1270"
    [dash] = body["other"]
    assert dash["kind"] == "dash" and abs(centre(dash["box"])[0] - left.width) < 5


def test_a_point_after_the_last_digit(client: TestClient) -> None:
    image, _ = draw_number("1", point_after=1)
    body = read(client, image)
    assert body["number"] == "1" and body["other"][0]["kind"] == "point"


def test_missing_field_is_422(client: TestClient) -> None:
    image, _ = draw_number("12")
    response = client.post("/read", files={"image": ("a.png", png_bytes(image), "image/png")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_openapi_documents_read(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/read"]["post"]
    responses = operation["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(responses)
    assert "MAX_DIGITS" in responses["422"]["description"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["NumberReading"]
    assert schema["examples"][0]["number"] == "25"
