"""Why an image that is not one handwritten digit is refused, in words.

The decision is the network's (``app.calibration``: its "not a digit" output,
against a threshold fitted on validation data), and, where the network is
unsure (a digit score under SECOND_LOOK_BELOW), what the image shows: a colour
photo is refused. This module explains a refusal to a person, from what the
image shows: colour and texture (a photo),
many small marks in rows (printed text), marks side by side (several characters:
``POST /read`` reads numbers), or else one shape that is no digit (a letter or a
symbol). It runs on the refusal path alone, so it may open the image again (for its
colours); the marks the upload's reading found (``marks_of`` its ink map) are handed
to it, and a HEIC's or AVIF's decoded image, as their decoders are slow.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from app import candidates, ink_blobs, preprocessing

PHOTO = "it looks like a photo or a picture, not a written digit."
TEXT = "it looks like printed text or a page of writing, not one digit."
SEVERAL = "it holds several characters; POST /read reads a number of several digits."
SYMBOL = "it looks like a letter or a symbol, not a digit."
LETTERS = "it looks like letters or symbols, not written digits."  # /read's SEVERAL and SYMBOL
# /read: digits whose scores' geometric mean (``looks_like_digits``) is under this
# are refused. Chosen on model.numbers' tuning draws and model.world's non-digits, seed 0
# (docs/reading.md): 1 of 1,200 numbers refused, 141 of 750 non-digits answered, not 600.
READ_BELOW = 0.3
# /read: a line read as 1s alone, two or more, is what stripes, hatching and a letter's
# straight strokes are cut into, and a rare number (one in a hundred of two digits,
# fewer of more): it is refused under this (chosen as READ_BELOW was: docs/reading.md).
ONES_BELOW = 0.8
# /read: a line mostly of 1s (MOSTLY_ONES or more, half its digits or more), what
# scribbles and textures are cut into beside a digit or two, is refused under this. Of
# the tuning draws' 15 such numbers the least looks 0.91; seed 0's non-digits answered
# so 0.35-0.54 (docs/reading.md#not-a-number).
MOSTLY_ONES = 3
MOSTLY_ONES_BELOW = 0.6
# /read: strokes cut by the image's left or right edge in this many places are a
# texture or a picture running off the frame, not a line of writing (a number cut
# tight has one digit at each edge, perhaps in two strokes); so are this many strokes
# each running from its top edge to its bottom (upright stripes: of 900 numbers cut
# tight 3 px into their ink, 4 at most).
FRAME_CUTS = 3
FRAME_SPANS = 5
# /read: a line of one digit is read as /predict reads the image, and refused where
# /predict refuses it; with that second check, its own bar is this, not READ_BELOW (of
# 3,100 single digits of model.world's kinds, seeds 5 and 6, 2,891 -> 2,929 and 2,927
# read right; non-digits answered, seeds 0 and 1, 54 -> 51 and 60 -> 58 of 1,500).
ONE_BELOW = 0.2
# /read: a point wholly above or below a digit, its middle over the middle of the digit
# (within DOT_WITHIN of its width of the digit's), at least DOT_SIZE of its height, on a
# line of at most DOT_POINTS points, is the dot of a ?, ! or i, not a decimal point (on
# the line, beside a digit); a larger mark there, or a point under a digit's side, is a
# broken stroke (a 5's bowl, a 9's tail), and specks are many and small. Chosen on the
# tuning draws and seeds 0 and 1's non-digits and numbers (docs/reading.md#not-a-number).
DOT = "point"
DOT_WITHIN = 0.3
DOT_SIZE = 0.1
DOT_POINTS = 2
SECOND_LOOK_BELOW = 0.6  # digit scores under this, though above the threshold, are uncertain
COLOURFUL_SATURATION = 0.25  # mean HSV saturation of a colour photo's pixels, 0..1
PHOTO_COVERAGE = 0.35  # share of the marks' box covered by ink: a scene, not strokes
TEXT_MARKS = 8  # this many marks of similar height: a line or a page of text
COLOUR_MODES = ("RGB", "RGBA", "P", "CMYK", "YCbCr")  # may show colour; reduced to look
MARK_INK = 0.3  # ink map values over this are part of a mark


class NotADigitError(preprocessing.NoDigitError):
    """The image decodes and has marks, but they are not one handwritten digit."""

    def __init__(self, reason: str):
        super().__init__(f"No digit found: {reason}")
        self.reason = reason


def refusal(
    data: bytes,
    score: float,
    threshold: float,
    limits: preprocessing.Limits,
    decoded: Image.Image | None = None,
    marks: np.ndarray | None = None,
) -> str | None:
    """Why an upload with this digit score is refused, or None when it is read: under
    the threshold, always; under SECOND_LOOK_BELOW, when the image is a colour photo.
    ``decoded``: what ``preprocessing.decode`` made of it, when the caller kept it,
    looked at instead of the file (whose decoder may cost a second); ``marks``: its
    marks (``marks_of`` its ink map), when the caller has them."""
    if score < threshold:
        return reason(data, limits, decoded, marks)
    if score < SECOND_LOOK_BELOW and _colourful(_image(data, limits, decoded)):
        return PHOTO
    return None


def reason(
    data: bytes,
    limits: preprocessing.Limits,
    decoded: Image.Image | None = None,
    marks: np.ndarray | None = None,
) -> str:
    """The most likely reason an upload is not one digit (one of the constants above).
    ``marks``, when known, save decoding the image and finding its ink again (as long
    again as reading it: 6-8 ms for 4,000 specks at 320×320)."""
    try:
        if _colourful(_image(data, limits, decoded)):
            return PHOTO
        if marks is None:
            if decoded is None:
                decoded = preprocessing.decode(preprocessing.open_image(data, limits))
            marks = marks_of(preprocessing.ink_map(preprocessing.page_levels(decoded)))
    except preprocessing.PreprocessingError:
        return SYMBOL
    return shape_reason(marks)


def looks_like_digits(
    digits: list[candidates.Digit], frame_cuts: candidates.FrameCuts = candidates.NO_CUTS
) -> float:
    """How much a line's digits look like handwritten digits, 0..1: the geometric mean of
    their scores (a digit's candidate score, as the splits weighed it; a digit the pair
    reader read keeps its candidate's). A letter, a scribble or a photo cut into the
    pieces that look most like digits still scores low on most of them. Stripes cut
    into pieces read as sure 1s: strokes cut by the image's left or right edge in
    FRAME_CUTS places or more, or FRAME_SPANS running from its top edge to its bottom
    (``frame_cuts``, ``splits.Proposal``'s) look like no line of writing: 0."""
    if not digits or frame_cuts.sides >= FRAME_CUTS or frame_cuts.spans >= FRAME_SPANS:
        return 0.0
    logs = [math.log(max(digit.score, 1e-12)) for digit in digits]
    return math.exp(sum(logs) / len(logs))


def number_refused(
    looks: float,
    digits: list[candidates.Digit],
    marks: list[candidates.Mark] = (),
    alone: bool | None = None,
) -> bool:
    """Whether ``POST /read`` refuses a line read as ``digits`` that look like handwritten
    digits this much (``looks_like_digits``), with these other ``marks``: under
    READ_BELOW; for a line of 1s alone (two or more) under ONES_BELOW, for one mostly of
    1s (MOSTLY_ONES) under MOSTLY_ONES_BELOW; always where a digit is dotted (``dotted``).
    A line of one digit whose image ``/predict``'s reading refuses (``alone`` True) is
    refused; one it answers (False), under ONE_BELOW."""
    if dotted(digits, marks):
        return True
    if alone is not None and len(digits) == 1:
        return alone or looks < ONE_BELOW
    ones = sum(digit.digit == 1 for digit in digits)
    if len(digits) > 1 and ones == len(digits):
        return looks < ONES_BELOW
    if ones >= MOSTLY_ONES and 2 * ones >= len(digits):
        return looks < MOSTLY_ONES_BELOW
    return looks < READ_BELOW


def judged(
    digits: list[candidates.Digit],
    frame_cuts: candidates.FrameCuts = candidates.NO_CUTS,
    marks: list[candidates.Mark] = (),
    alone: bool | None = None,
) -> tuple[float, bool]:
    """How much a line's digits look like digits (``looks_like_digits``), and whether
    ``POST /read`` refuses them (``number_refused``)."""
    looks = looks_like_digits(digits, frame_cuts)
    return looks, number_refused(looks, digits, marks, alone)


def dotted(digits: list[candidates.Digit], marks: list[candidates.Mark]) -> bool:
    """Whether one of ``marks``, a point (DOT) and one of DOT_POINTS at most, lies
    wholly above or below a digit, its middle over the digit's (DOT_WITHIN), at least
    DOT_SIZE of its height: a ?, ! or i, not a digit and a decimal point."""
    points = [mark.box for mark in marks if mark.kind == DOT]
    if len(points) > DOT_POINTS:
        return False  # specks
    for point in points:
        middle = point.x + point.width / 2
        for digit in digits:
            box = digit.box
            apart = point.y >= box.y + box.height or point.y + point.height <= box.y
            over = abs(middle - box.x - box.width / 2) <= DOT_WITHIN * box.width
            if apart and over and max(point.width, point.height) >= DOT_SIZE * box.height:
                return True
    return False


def read_reason(
    data: bytes,
    limits: preprocessing.Limits,
    decoded: Image.Image | None = None,
    why: str | None = None,
) -> str:
    """Why an upload to ``POST /read`` is refused (``reason``, in words for a line of
    several characters: a photo, text, or letters and symbols; ``decoded`` as there);
    ``why``: the reason found already (``refusal``'s, of a line of one digit)."""
    why = why or reason(data, limits, decoded)
    return LETTERS if why in (SEVERAL, SYMBOL) else why


def _image(data: bytes, limits: preprocessing.Limits, decoded: Image.Image | None) -> Image.Image:
    """A copy of the decoded image (``_colourful`` reduces what it gets), or the file
    opened again."""
    return decoded.copy() if decoded is not None else preprocessing.open_image(data, limits)


def _colourful(image: Image.Image) -> bool:
    """Whether an image, opened or decoded, is a colour photo: the service decodes
    JPEGs in grey, so a JPEG's colour is looked at here, at reduced scale (in place:
    open it again, or pass a copy, to use it whole)."""
    if image.mode not in COLOUR_MODES:
        return False
    if image.format == "JPEG":
        image.draft("RGB", (64, 64))
    image.thumbnail((64, 64), Image.Resampling.BOX)
    small = image.convert("RGB").convert("HSV")
    saturation = np.asarray(small, dtype=np.float32)[..., 1] / 255.0
    return float(saturation.mean()) > COLOURFUL_SATURATION


def marks_of(ink: np.ndarray) -> np.ndarray:
    """What a reason is read from: the pixels of an ink map (``preprocessing.ink_map``)
    over MARK_INK, as a bool mask (a quarter of the ink map's memory, for a batch's
    uploads to keep until they are answered)."""
    return ink > MARK_INK


def shape_reason(strokes: np.ndarray) -> str:
    """From the marks (``marks_of``): a scene, text, several characters, or one odd
    shape."""
    labels, count = ndimage.label(strokes, structure=ink_blobs.EIGHT_NEIGHBOURS)
    if count == 0:
        return SYMBOL
    boxes = ndimage.find_objects(labels)
    top, bottom, left, right = ink_blobs.bounds(strokes)  # count > 0: some strokes
    box_area = (bottom - top) * (right - left)
    if strokes.sum() / box_area > PHOTO_COVERAGE and count > 2:
        return PHOTO
    heights = np.array([box[0].stop - box[0].start for box in boxes])
    marks = [
        box for box, height in zip(boxes, heights, strict=True) if height >= 0.4 * heights.max()
    ]
    if len(marks) >= TEXT_MARKS:
        return TEXT
    # Marks side by side: their column spans do not overlap.
    spans = sorted((box[1].start, box[1].stop) for box in marks)
    groups, right = 0, -1
    for start, stop in spans:
        if start >= right:
            groups += 1
        right = max(right, stop)
    return SEVERAL if groups >= 2 else SYMBOL
