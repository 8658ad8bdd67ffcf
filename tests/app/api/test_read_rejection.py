"""POST /read refuses marks that do not look like handwritten digits, as /predict
refuses one that does not look like a digit; reject=false answers them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app import rejection
from app.candidates import Box, Digit, FrameCuts, Mark
from tests.app.handwriting import draw_number
from tests.app.test_rejection import coins_photo, printed
from tests.conftest import png_bytes, sheared


def post(client: TestClient, content: bytes, **params):
    return client.post("/read", files={"file": ("upload.png", content, "image/png")}, params=params)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(printed("HELLO"), rejection.LETTERS), (coins_photo(), rejection.PHOTO)],
    ids=["a printed word", "a photo of coins"],
)
def test_what_is_no_number_is_refused_with_a_reason(
    client: TestClient, content: bytes, reason: str
) -> None:
    response = post(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {reason}"
    answered = post(client, content, reject="false")
    assert answered.status_code == 200, answered.text
    assert answered.json()["digit_score"] < rejection.READ_BELOW


# Capital letters written as pen strokes (x, y on a 100-pixel square): each was cut
# into pieces read as a number ("14", "11", "71") until the pair reader learnt letters
# and symbols as "not two digits" (model.pairs --letters); an N and a W, cut into three
# read as "111", until the reader was asked about every two neighbouring digits of a cut
# split in three or more (app.splits, step 10).
PEN_LETTERS = {
    "M": [[(10, 90), (15, 10), (45, 60), (75, 10), (80, 90)]],
    "X": [[(15, 10), (75, 90)], [(75, 10), (15, 90)]],
    "V": [[(10, 10), (45, 90), (80, 10)]],
    "N": [[(20, 90), (20, 10), (70, 90), (70, 10)]],
    "W": [[(5, 10), (25, 90), (45, 30), (65, 90), (85, 10)]],
}


@pytest.mark.parametrize("pen", [4, 7, 11])
@pytest.mark.parametrize("letter", sorted(PEN_LETTERS))
def test_a_letter_written_in_strokes_is_no_number(
    client: TestClient, letter: str, pen: int
) -> None:
    image = Image.new("L", (200, 120), 255)
    canvas = ImageDraw.Draw(image)
    for stroke in PEN_LETTERS[letter]:
        canvas.line([(x + 50, y + 10) for x, y in stroke], fill=20, width=pen, joint="curve")
    response = post(client, png_bytes(image))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.LETTERS}"


ARROWS = {
    "right": [[(10, 50), (90, 50)], [(65, 30), (90, 50), (65, 70)]],
    "left": [[(90, 50), (10, 50)], [(35, 30), (10, 50), (35, 70)]],
}


@pytest.mark.parametrize(("arrow", "pen"), [("right", 4), ("left", 11)])
def test_one_mark_predict_refuses_is_no_number(client: TestClient, arrow: str, pen: int) -> None:
    """Its shaft a rule and its head a 7 or a 6 that looked like a digit 0.95 and 0.54 to
    /read: one digit, which /predict refuses for the whole image."""
    image = Image.new("L", (200, 120), 255)
    for stroke in ARROWS[arrow]:
        ImageDraw.Draw(image).line([(x + 50, y + 10) for x, y in stroke], fill=20, width=pen)
    content = png_bytes(image)
    alone = client.post("/predict", files={"file": ("arrow.png", content, "image/png")})
    assert alone.status_code == 422
    response = post(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("No digit found: ")


@pytest.mark.parametrize(("letter", "font_size"), [("W", 60), ("M", 100), ("w", 60)])
def test_a_printed_letter_whose_strokes_lean_apart_is_no_number(
    client: TestClient, letter: str, font_size: int
) -> None:
    """Each straight stroke of the letter reads as a sure 1 ("1111" until two touching
    1s leaning to either side of upright were taken for a letter's strokes:
    candidates.letter_strokes); the letter whole is no digit."""
    response = post(client, printed(letter, font_size=font_size))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.LETTERS}"


@pytest.mark.parametrize("font_size", [60, 100])
@pytest.mark.parametrize("text", ["?", "!", "?!"])
def test_a_mark_with_a_dot_under_it_is_no_number(
    client: TestClient, text: str, font_size: int
) -> None:
    """A ? read as a 7 (by /predict, as a 2) and a ! as a 1, their dots taken for decimal
    points (until a point wholly under a digit was taken for a dot: rejection.dotted)."""
    content = printed(text, font_size=font_size)
    assert post(client, content, reject="false").json()["number"] in ("7", "2", "1", "71")
    response = post(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.LETTERS}"


@pytest.mark.parametrize("slant", [-0.2, 0.0, 0.2, 0.35])
def test_touching_ones_that_lean_alike_are_read(client: TestClient, slant: float) -> None:
    """Two 1s whose strokes touch lean as the hand that wrote them: no letter."""
    image, _ = draw_number("11", gap=-0.3)
    assert post(client, png_bytes(sheared(image, slant))).json()["number"] == "11"


def test_a_line_read_as_ones_alone_must_look_surely_like_digits(client: TestClient) -> None:
    """A slanted M is cut into three straight strokes read as "111" that look like
    digits 0.66 (READ_BELOW 0.3): a line of 1s alone, what stripes, hatching and
    letters' strokes are cut into, is refused under ONES_BELOW; one written is read."""
    content = printed("M", slant=0.25)
    assert post(client, content, reject="false").json()["number"] == "111"
    response = post(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.LETTERS}"
    body = post(client, png_bytes(draw_number("111")[0])).json()
    assert body["number"] == "111" and body["digit_score"] >= rejection.ONES_BELOW


def test_a_written_number_is_read_either_way(client: TestClient) -> None:
    content = png_bytes(draw_number("2025")[0])
    for params in ({}, {"reject": "false"}):
        body = post(client, content, **params).json()
        assert body["number"] == "2025" and body["digit_score"] > rejection.READ_BELOW


def stripes(period: int, angle: float, size: int = 150) -> bytes:
    """Dark and light stripes filling the image, across it at ``angle`` (radians from
    upright): a fabric, a barcode, a grille."""
    rows, columns = np.mgrid[0:size, 0:size]
    phase = (columns * np.cos(angle) + rows * np.sin(angle)) / period
    return png_bytes(Image.fromarray(np.where(phase % 1 < 0.5, 20, 235).astype(np.uint8)))


@pytest.mark.parametrize(
    ("period", "angle"), [(10, 0.3), (16, 0.6), (16, 1.3), (24, 1.0), (20, 0.0), (14, 0.1)]
)
def test_stripes_running_off_the_frame_are_no_number(
    client: TestClient, period: int, angle: float
) -> None:
    """Each stripe reads as a sure 1 (a line of "11111111" until the frame's cuts
    counted: rejection.FRAME_CUTS); the left and right edges cut many of them, or
    (upright stripes) the top and bottom edges both cut each (rejection.FRAME_SPANS)."""
    content = stripes(period, angle)
    response = post(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.PHOTO}"
    assert post(client, content, reject="false").json()["digit_score"] == 0.0


@pytest.mark.parametrize("number", ["4114", "2025", "1111"])
def test_a_number_cropped_tight_is_read(client: TestClient, number: str) -> None:
    """Its first and last digits cut by the frame's left and right edges (a 4's two
    strokes both at the left): a line of writing, not a texture."""
    image, _ = draw_number(number)
    ink = np.asarray(image.convert("L")) < 128
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    tight = image.crop((columns[0] + 1, rows[0] + 1, columns[-1], rows[-1]))
    body = post(client, png_bytes(tight)).json()
    assert body["number"] == number and body["digit_score"] > rejection.READ_BELOW


def digit(score: float, read_as: int = 1, box: Box | None = None) -> Digit:
    return Digit(np.eye(10)[read_as], np.zeros((28, 28, 1)), box or Box(0, 0, 1, 1), score)


def test_digits_look_like_digits_by_the_geometric_mean_of_their_scores() -> None:
    assert rejection.looks_like_digits([digit(0.9), digit(0.1)]) == pytest.approx(0.3)
    assert rejection.looks_like_digits([digit(1.0)] * 7 + [digit(0.01)]) == pytest.approx(
        math.exp(math.log(0.01) / 8)
    )
    assert rejection.looks_like_digits([digit(0.0)]) < 1e-6
    assert rejection.looks_like_digits([]) == 0.0
    sure = [digit(1.0)] * 4
    cuts, spans = rejection.FRAME_CUTS, rejection.FRAME_SPANS
    assert rejection.looks_like_digits(sure, FrameCuts(cuts - 1, spans - 1)) == 1.0
    assert rejection.looks_like_digits(sure, FrameCuts(cuts, 0)) == 0.0
    assert rejection.looks_like_digits(sure, FrameCuts(0, spans)) == 0.0


def test_a_line_of_ones_alone_is_held_to_a_higher_bar() -> None:
    between = (rejection.READ_BELOW + rejection.ONES_BELOW) / 2
    ones, one_seven = [digit(1.0)] * 2, [digit(1.0), digit(1.0, read_as=7)]
    assert rejection.number_refused(between, ones)
    assert not rejection.number_refused(rejection.ONES_BELOW, ones)
    assert not rejection.number_refused(between, one_seven)
    assert not rejection.number_refused(between, ones[:1])  # one 1: /predict's digit
    assert rejection.number_refused(rejection.READ_BELOW - 0.01, one_seven)


def test_a_line_mostly_of_ones_is_held_to_a_bar_of_its_own() -> None:
    """Scribbles and textures are cut into 1s beside a digit or two ("81111", "74111")."""
    between = (rejection.READ_BELOW + rejection.MOSTLY_ONES_BELOW) / 2
    ones, eight = [digit(1.0)] * rejection.MOSTLY_ONES, [digit(1.0, read_as=8)]
    assert rejection.number_refused(between, eight + ones)
    assert rejection.number_refused(between, eight * len(ones) + ones)  # half of them
    assert not rejection.number_refused(rejection.MOSTLY_ONES_BELOW, eight + ones)
    assert not rejection.number_refused(between, eight * (len(ones) + 1) + ones)
    assert not rejection.number_refused(between, eight + ones[1:])  # too few 1s


def test_one_digit_is_held_to_predicts_refusal_and_a_lower_bar() -> None:
    """/predict's reading of the image is a second check on a line of one digit."""
    [one] = [digit(1.0, read_as=4)]
    between = (rejection.ONE_BELOW + rejection.READ_BELOW) / 2
    assert rejection.number_refused(between, [one])  # /predict not asked
    assert not rejection.number_refused(between, [one], alone=False)
    assert rejection.number_refused(rejection.ONE_BELOW - 0.01, [one], alone=False)
    assert rejection.number_refused(1.0, [one], alone=True)
    assert rejection.number_refused(between, [one, one], alone=False)  # two digits


def test_a_point_wholly_above_or_below_a_digit_is_a_dot() -> None:
    """A ?, ! or i: refused however sure its digit; a decimal point, on the line beside
    a digit, a dash over one (a 5's bar written apart), a point under its side (a 9's
    tail broken off), a larger mark under one (a 5's bowl) and specks, small or many,
    are not dots."""
    seven = [digit(1.0, read_as=7, box=Box(20, 20, 20, 40))]
    for point in (Box(28, 64, 5, 5), Box(31, 8, 5, 5), Box(23, 61, 6, 6)):
        assert rejection.dotted(seven, [Mark(rejection.DOT, point)])
        assert rejection.number_refused(1.0, seven, [Mark(rejection.DOT, point)])
    for beside in (Box(42, 55, 5, 5), Box(32, 56, 6, 6), Box(16, 61, 6, 6), Box(4, 70, 5, 5)):
        assert not rejection.dotted(seven, [Mark(rejection.DOT, beside)])
    assert not rejection.dotted(seven, [Mark("dash", Box(22, 10, 16, 3))])
    assert not rejection.dotted(seven, [Mark("mark", Box(15, 60, 16, 20))])
    assert not rejection.dotted(seven, [Mark(rejection.DOT, Box(29, 64, 3, 3))])  # a speck
    specks = [Mark(rejection.DOT, Box(28, 64, 5, 5))] * (rejection.DOT_POINTS + 1)
    assert not rejection.dotted(seven, specks)
    assert not rejection.number_refused(1.0, seven, [Mark("point", Box(42, 55, 5, 5))])


def test_a_line_of_one_mark_refused_as_predict_refuses_it_gives_its_reason_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A printed letter alone on /read: /predict's reading of the image refuses it,
    and its reason, found there, is the answer's (in /read's words), not found again."""
    found = []
    reason = rejection.reason

    def counted(*args, **kwargs):
        found.append(reason(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(rejection, "reason", counted)
    response = post(client, printed("K"))
    assert response.status_code == 422, response.text
    assert len(found) == 1
    assert (
        response.json()["detail"]
        == f"No digit found: {rejection.read_reason(b'', None, None, found[0])}"
    )
