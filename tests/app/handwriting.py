"""Numbers drawn with a pen, stroke by stroke, for the /read tests."""

from __future__ import annotations

from PIL import Image, ImageDraw

# Each digit as strokes (polylines, or ("ellipse", box)) in a unit box: x right, y down.
STROKES: dict[str, list] = {
    "0": [("ellipse", (0.1, 0.0, 0.9, 1.0))],
    "1": [[(0.35, 0.15), (0.6, 0.0), (0.6, 1.0)]],
    "2": [
        [(0.1, 0.25), (0.3, 0.02), (0.7, 0.02), (0.9, 0.25), (0.8, 0.5), (0.1, 1.0), (0.95, 1.0)]
    ],
    "3": [
        [(0.1, 0.1), (0.5, 0.0), (0.9, 0.15), (0.85, 0.35), (0.45, 0.5)],
        [(0.45, 0.5), (0.9, 0.65), (0.9, 0.85), (0.5, 1.0), (0.1, 0.9)],
    ],
    # A 4 in two strokes that do not touch, as many people write it.
    "4": [[(0.45, 0.0), (0.05, 0.6), (0.6, 0.6)], [(0.8, 0.1), (0.8, 1.0)]],
    # A 5 whose bar was added after, apart from the body.
    "5": [
        [(0.2, 0.05), (0.15, 0.45), (0.6, 0.4), (0.9, 0.6), (0.85, 0.9), (0.5, 1.0), (0.1, 0.9)],
        [(0.42, 0.02), (0.95, 0.02)],
    ],
    "7": [[(0.05, 0.0), (0.95, 0.0), (0.4, 1.0)]],
}


def draw_digit(draw: ImageDraw.ImageDraw, digit: str, x: float, y: float, size: float, pen: int):
    """One digit in the box (x, y) of ``size`` high and 0.6 × ``size`` wide."""
    width = 0.6 * size
    for stroke in STROKES[digit]:
        if stroke[0] == "ellipse":
            left, top, right, bottom = stroke[1]
            box = (x + left * width, y + top * size, x + right * width, y + bottom * size)
            draw.ellipse(box, outline=0, width=pen)
        else:
            points = [(x + px * width, y + py * size) for px, py in stroke]
            draw.line(points, fill=0, width=pen, joint="curve")
            for point in (points[0], points[-1]):  # round ends, as a pen makes
                r = pen / 2
                draw.ellipse((point[0] - r, point[1] - r, point[0] + r, point[1] + r), fill=0)


def draw_number(
    text: str,
    size: int = 100,
    gap: float = 0.3,
    pen: int | None = None,
    margin: int = 40,
    point_after: int | None = None,
) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """Dark digits on white, ``gap`` × ``size`` apart; with a decimal point after
    the ``point_after``-th digit. Returns the image and each digit's drawn box."""
    pen = pen or max(2, size // 10)
    advance = (0.6 + gap) * size
    width = round(2 * margin + len(text) * advance)
    image = Image.new("L", (width, size + 2 * margin), 255)
    draw = ImageDraw.Draw(image)
    boxes = []
    for index, digit in enumerate(text):
        x = margin + index * advance
        draw_digit(draw, digit, x, margin, size, pen)
        boxes.append((x, margin, x + 0.6 * size, margin + size))
    if point_after is not None:
        x = margin + point_after * advance - gap * size / 2
        r = pen * 0.8
        draw.ellipse((x - r, margin + size - 2 * r, x + r, margin + size), fill=0)
    return image, boxes
