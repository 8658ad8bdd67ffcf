"""Training images beyond MNIST: digits as the world writes them, and non-digits.

Every image here is rendered as an upload would look (grey levels, either
polarity, with or without a margin) and then normalised by the service's own
``app.preprocessing``, so the network learns exactly what it will be shown:

- **world variants** of MNIST training digits: box-normalised (stretched,
  binarised, 8–32 px, enlarged), marker and hairline strokes, slant and rotation
  up to ±20°, elastic distortion, tight crops (``model.distort``); with
  ``--crossed-sevens``, a share of the 7s crossed (``model.habits``, pendigits' too);
- **real writers**: pendigits' training writers drawn with round pens of many
  widths, optdigits' training bitmaps as scanned and enlarged;
- **not a digit** (class 10, outlier exposure): letters and symbols that look
  like no digit, rendered in the fonts Debian packages ship and distorted like
  the digits; scribbles; textures; generated scenes and photos; pages of text;
  and several digits side by side (``/read`` reads those); with ``--drawn-letters``,
  letters only where the font has them (``glyph``'s ``drawn_only``, as measured).

Fonts are split by family: ``TRAINING_FONTS`` teach, ``MEASURING_FONTS`` are kept
for measuring (``model.world``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from app.preprocessing import NoDigitError, input_and_ink
from model import distort as d
from model import habits
from model.realdigits import PenDigit, draw

NOT_A_DIGIT = 10
FONT_ROOT = Path("/usr/share/fonts")  # Debian's; FONTS_DIR names another
# Font families (folders under the root) and the Debian packages that ship them:
# the first teach the network, the others are kept for measuring (``model.world``).
TRAINING_FONTS = {
    "dejavu": "fonts-dejavu-core",
    "liberation": "fonts-liberation",
    "freefont": "fonts-freefont-ttf",
    "noto": "fonts-noto-core",
}
MEASURING_FONTS = {
    "urw-base35": "fonts-urw-base35",
    "linux-libertine": "fonts-linuxlibertine",
    "crosextra": "fonts-crosextra-carlito",
}
# Shapes that look like no digit. Left out on purpose: O o Q D C U (0), I l i j J
# T t ! | / ( ) [ ] (1), Z z (2), B & S s $ § (5, 8), G b (6), g q a P y (9), A h (4).
NOT_DIGIT_CHARACTERS = "EFHKMNRVWXYcefkmnpruvwx#%@*+=?¶©®£€¥ΩπλΣΦΨЖДЯЮЩжфш¤♣♠♥★✓✗→←↑↓∞≈≠"
LATIN_NOTO = ("NotoSans-", "NotoSerif-", "NotoSansMono-")
# Fonts whose code points name other glyphs than the characters' (Adobe's Symbol and
# Dingbats encodings): their "x" is a ξ or a bar like a 1, Dingbats' "¶" a circled 1.
SYMBOL_ENCODED = ("D050000L", "StandardSymbolsPS")
NO_CHARACTER = "\uffff"  # a noncharacter: every font draws its .notdef glyph for it


class MissingFontsError(RuntimeError):
    """A font family the non-digits are drawn in is not installed."""


def fonts(training: bool, root: Path | None = None) -> list[Path]:
    """The scalable fonts of the training families, or of the measuring ones; every
    family must be there, so that what is trained and measured does not depend on
    what else a machine happens to have."""
    root = root or Path(os.environ.get("FONTS_DIR", FONT_ROOT))
    families = TRAINING_FONTS if training else MEASURING_FONTS
    found: dict[str, list[Path]] = {family: [] for family in families}
    for path in sorted(root.rglob("*")):
        family = next((f for f in families if f in path.parts), None)
        if family is None or path.suffix.lower() not in (".ttf", ".otf"):
            continue
        if path.stem in SYMBOL_ENCODED:
            continue
        if family != "noto" or path.name.startswith(LATIN_NOTO):
            found[family].append(path)
    missing = [families[family] for family, paths in found.items() if not paths]
    if missing:
        raise MissingFontsError(
            f"fonts not found under {root}: apt-get install {' '.join(missing)} "
            "(or set FONTS_DIR to a folder holding them)"
        )
    return [path for paths in found.values() for path in paths]


def _pen_ink(side: int, strokes: list[np.ndarray], pen: float) -> np.ndarray:
    """Anti-aliased strokes (each an (n, 2) array of x, y) on a side×side square."""
    image = Image.new("L", (side * 2, side * 2), 0)
    canvas = ImageDraw.Draw(image)
    for stroke in strokes:
        canvas.line([tuple(p) for p in stroke * 2], fill=255, width=max(1, round(pen * 2)))
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), np.float32) / 255.0


def _distorted_ink(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same random distortions the digits get, for shapes that are not digits:
    elastic distortion, another stroke width, turn and slant, each now and then."""
    if rng.random() < 0.3:
        ink = d.elastic(ink, rng, alpha=ink.shape[0] * 0.8, sigma=ink.shape[0] / 8)
    if rng.random() < 0.3:
        ink = d.restroked(ink, int(rng.integers(-12, 10)), supersample=1)
    if rng.random() < 0.5:
        ink = d.affine(ink, rng.uniform(-20, 20), rng.uniform(-0.4, 0.4), pad=ink.shape[0] // 4)
    return ink


def _presented(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As people send it: a tight crop or a margin, box-normalised or not,
    binarised or not, small or large; dark on light or light on dark."""
    choice = rng.random()
    if choice < 0.25:
        ink = d.box_normalised(ink, int(rng.choice([8, 12, 16, 16, 20, 32])), rng.random() < 0.3)
        if rng.random() < 0.5:
            ink = d.binarised(ink, rng.uniform(0.2, 0.6))
        if rng.random() < 0.5:
            resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
            ink = d.enlarged(ink, int(rng.integers(2, 7)), resample)
    elif choice < 0.5:
        ink = d.cropped(ink, margin=int(rng.integers(0, 3)), level=0.2)
        if rng.random() < 0.3:
            ink = d.binarised(ink, rng.uniform(0.2, 0.6))
    else:
        pad = int(rng.integers(2, 20))
        ink = d.padded(d.cropped(ink), pad, pad, pad, pad)
    return d.on_paper(ink, dark_ink=bool(rng.random() < 0.75))


def world_variant(digit: np.ndarray, rng: np.random.Generator, crossed: bool = False) -> np.ndarray:
    """An MNIST digit (uint8, ink 255) as handwriting from elsewhere looks, as grey
    levels; ``crossed``: a 7 with a bar across its stem (``model.habits``)."""
    ink = digit.astype(np.float32) / 255.0
    if rng.random() < 0.3:  # Simard's elastic distortion, at MNIST's own scale
        ink = d.elastic(ink, rng, alpha=rng.uniform(20, 36), sigma=4.0)
    side = int(rng.integers(40, 84))
    ink = d.resized(ink, side, side)
    if crossed:
        ink = habits.crossed_seven(ink, rng)
    if rng.random() < 0.4:
        ink = d.restroked(ink, int(rng.integers(-side // 5, side // 8 + 1)), supersample=1)
    if rng.random() < 0.5:
        ink = d.affine(ink, rng.uniform(-20, 20), rng.uniform(-0.45, 0.45), pad=side // 4)
    return _presented(ink, rng)


def rewritten(digit: PenDigit, rng: np.random.Generator) -> PenDigit:
    """The same trajectory in another writer's proportions: narrower or wider, and
    each stroke of a several-stroke digit placed a little apart (3 % of its size)."""
    points = np.concatenate(digit.strokes)
    size = float((points.max(axis=0) - points.min(axis=0)).max())
    stretch = np.array([rng.uniform(0.75, 1.3), 1.0], dtype=np.float32)
    jitter = 0.03 * size if len(digit.strokes) > 1 else 0.0
    strokes = tuple(
        stroke * stretch + rng.normal(0.0, jitter, 2).astype(np.float32) for stroke in digit.strokes
    )
    return PenDigit(digit.label, strokes, digit.writer)


def pen_variant(digit: PenDigit, rng: np.random.Generator, crossed: bool = False) -> np.ndarray:
    """A pendigits trajectory, rewritten, drawn with a round pen from hairline to marker;
    ``crossed``: a 7 with a bar across its stem (``model.habits``)."""
    if crossed:
        digit = habits.crossed_pen_seven(digit, rng)
    pen, fill = rng.uniform(1.2, 11.0), rng.uniform(0.4, 0.9)
    coverage = draw(rewritten(digit, rng), side=84, pen=pen, fill=fill)
    if rng.random() < 0.3:
        coverage = d.affine(coverage, rng.uniform(-15, 15), rng.uniform(-0.3, 0.3))
    return _presented(coverage, rng)


def bitmap_variant(bitmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An optdigits 32×32 bitmap as scanned, with or without a margin, maybe enlarged;
    or presented as the world variants are (box-normalised to 8–32 px, cropped, …)."""
    ink = bitmap.astype(np.float32)
    if rng.random() < 0.5:
        return _presented(ink, rng)
    if rng.random() < 0.5:
        pad = int(rng.integers(1, 10))
        ink = d.padded(ink, pad, pad, pad, pad)
    if rng.random() < 0.5:
        resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
        ink = d.enlarged(ink, int(rng.integers(2, 5)), resample)
    return d.on_paper(ink, dark_ink=bool(rng.random() < 0.75))


@functools.lru_cache(maxsize=512)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@functools.lru_cache(maxsize=512)
def _notdef(path: Path) -> Image.core.ImagingCore:
    """The font's .notdef glyph (a box, or nothing): what it draws for a character it
    lacks, as for a noncharacter no font holds."""
    return _font(path, 48).getmask(NO_CHARACTER)


@functools.lru_cache(maxsize=8192)
def has_glyph(path: Path, character: str) -> bool:
    """Whether the font draws ``character`` rather than its .notdef glyph."""
    drawn, missing = _font(path, 48).getmask(character), _notdef(path)
    return drawn.size != missing.size or not np.array_equal(drawn, missing)


def glyph_choice(
    rng: np.random.Generator, font_files: list[Path], drawn_only: bool = False
) -> tuple[str, Path]:
    """A character that looks like no digit and a font to draw it in; with
    ``drawn_only``, one the font has (the training recipe takes any: 223 of its 3,712
    font and character pairs are .notdef boxes)."""
    while True:
        character = NOT_DIGIT_CHARACTERS[int(rng.integers(len(NOT_DIGIT_CHARACTERS)))]
        path = font_files[int(rng.integers(len(font_files)))]
        if not drawn_only or has_glyph(path, character):
            return character, path


def glyph(rng: np.random.Generator, font_files: list[Path], drawn_only: bool = False) -> np.ndarray:
    """A letter or symbol that looks like no digit, in a random font (``glyph_choice``),
    distorted, as grey levels."""
    return _presented(glyph_ink(rng, font_files, drawn_only), rng)


def glyph_ink(
    rng: np.random.Generator, font_files: list[Path], drawn_only: bool = False
) -> np.ndarray:
    """``glyph``'s ink, before it is presented: float32 in [0, 1], bright on dark."""
    character, path = glyph_choice(rng, font_files, drawn_only)
    font = _font(path, 48)
    image = Image.new("L", (80, 80), 0)
    ImageDraw.Draw(image).text((40, 40), character, fill=255, font=font, anchor="mm")
    return _distorted_ink(np.asarray(image, dtype=np.float32) / 255.0, rng)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """Zigzags, spirals, hatching and crossings: pen marks that are no digit."""
    side, strokes = 84, []
    for _ in range(int(rng.integers(2, 6))):
        kind = rng.random()
        if kind < 0.4:  # a zigzag of many turns
            count = int(rng.integers(6, 14))
            strokes.append(rng.uniform(10, side - 10, (count, 2)))
        elif kind < 0.7:  # a spiral
            turns = np.linspace(0, rng.uniform(3, 6) * np.pi, 80)
            radius = np.linspace(2, rng.uniform(15, 38), 80)
            centre = rng.uniform(25, side - 25, 2)
            strokes.append(centre + np.stack([np.cos(turns), np.sin(turns)], 1) * radius[:, None])
        else:  # hatching
            start = rng.uniform(0, side, 2)
            direction = rng.normal(size=2)
            direction /= np.linalg.norm(direction)
            normal = np.array([-direction[1], direction[0]])
            for step in range(int(rng.integers(4, 9))):
                origin = start + normal * step * 6 - direction * 30
                strokes.append(np.stack([origin, origin + direction * 60]))
    return _presented(_pen_ink(side, strokes, rng.uniform(1.5, 6)), rng)


def texture(rng: np.random.Generator) -> np.ndarray:
    """Blotches, grain, stripes, grids: surfaces, not writing."""
    side = int(rng.integers(48, 160))
    kind = rng.random()
    if kind < 0.4:
        values = ndimage.gaussian_filter(rng.normal(size=(side, side)), rng.uniform(1, 6))
        ink = (values > np.quantile(values, rng.uniform(0.4, 0.8))).astype(np.float32)
    elif kind < 0.7:
        rows, columns = np.mgrid[0:side, 0:side].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
        wave = np.sin((np.cos(angle) * columns + np.sin(angle) * rows) * 2 * np.pi / period)
        if rng.random() < 0.5:
            wave = wave * np.sin(columns * 2 * np.pi / rng.uniform(4, 16))
        ink = (wave > 0).astype(np.float32)
    else:
        ink = (rng.random((side // 4, side // 4)) < rng.uniform(0.2, 0.6)).astype(np.float32)
        ink = d.enlarged(ink, 4)
    return d.on_paper(ink, dark_ink=bool(rng.random() < 0.7))


def scene(rng: np.random.Generator) -> np.ndarray:
    """A generated photo: shaded objects (coins, balls, boxes) on a lit background."""
    height, width = int(rng.integers(60, 200)), int(rng.integers(60, 200))
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    colour = rng.uniform(40, 230, 3)
    gradient = (columns / width - 0.5) * rng.uniform(-80, 80) + (rows / height) * rng.uniform(
        -60, 60
    )
    pixels = colour[None, None, :] + gradient[..., None]
    for _ in range(int(rng.integers(1, 8))):
        centre = rng.uniform(0, 1, 2) * (height, width)
        radii = rng.uniform(0.08, 0.4, 2) * min(height, width)
        inside = ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2
        shade = np.clip(1.2 - inside, 0, 1)[..., None]
        if rng.random() < 0.5:  # a box instead of a round thing
            shade = (np.abs(rows - centre[0]) < radii[0]) & (np.abs(columns - centre[1]) < radii[1])
            shade = shade[..., None].astype(np.float32)
        pixels = pixels * (1 - shade) + rng.uniform(0, 255, 3) * shade * rng.uniform(0.6, 1.0)
    pixels += rng.normal(0, rng.uniform(2, 10), pixels.shape)
    rgb = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(rgb.convert("L"))


def text_page(rng: np.random.Generator, font_files: list[Path]) -> np.ndarray:
    """Lines of printed words, as a photographed or scanned page."""
    side = int(rng.integers(100, 240))
    font = _font(font_files[int(rng.integers(len(font_files)))], int(rng.integers(9, 20)))
    image = Image.new("L", (side, side), int(rng.integers(200, 256)))
    canvas = ImageDraw.Draw(image)
    letters = "abcdefghijklmnopqrstuvwxyz     ETAOINSHRDLU0123456789.,"
    y = int(rng.integers(0, 20))
    while y < side:
        line = "".join(letters[i] for i in rng.integers(len(letters), size=side // 5))
        canvas.text((int(rng.integers(-10, 10)), y), line, fill=int(rng.integers(0, 80)), font=font)
        y += int(font.size * rng.uniform(1.2, 2.0))
    return np.asarray(image)


def several_digits(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two to four MNIST digits side by side, apart or touching: a number, not a digit."""
    count = int(rng.integers(2, 5))
    chosen = digits[rng.integers(len(digits), size=count)].astype(np.float32) / 255.0
    parts = [d.cropped(digit) for digit in chosen]
    height = max(part.shape[0] for part in parts)
    gap = int(rng.integers(-3, 8))
    width = sum(part.shape[1] for part in parts) + gap * (count - 1) + 8
    ink = np.zeros((height + 8, max(width, 8)), dtype=np.float32)
    x = 4
    for part in parts:
        top = 4 + (height - part.shape[0]) // 2
        region = ink[top : top + part.shape[0], x : x + part.shape[1]]
        region[...] = np.maximum(region, part[:, : region.shape[1]])
        x += part.shape[1] + gap
    return d.on_paper(d.enlarged(ink, 3, Image.Resampling.BILINEAR), bool(rng.random() < 0.75))


def network_input(grey: np.ndarray) -> np.ndarray | None:
    """Grey levels (uint8) -> the 28×28 the service would feed the network (its first
    reading: ``preprocessing.input_and_ink``), or None where the service would refuse
    the image as blank."""
    try:
        return input_and_ink(Image.fromarray(grey, "L"))[0][..., 0]
    except NoDigitError:
        return None


def one_upright_bar(network_input: np.ndarray) -> bool:
    """Whether an input is one solid upright bar: a 1 to any reader, whatever was
    drawn (a tall box or a long ellipse in a generated scene, 5 % of them)."""
    ink = network_input > 0.3
    labels, count = ndimage.label(ink)
    if count == 0:
        return False
    sizes = ndimage.sum(ink, labels, range(1, count + 1))
    if sizes.max() < 0.9 * sizes.sum():
        return False
    rows, columns = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    return bool(height >= 2.5 * width and sizes.max() >= 0.6 * height * width)


def negative_renderers(
    font_files: list[Path], digits: np.ndarray, drawn_only: bool = False
) -> list[tuple[float, Callable]]:
    """(share, render(rng) -> grey) for each kind of non-digit; ``drawn_only``: letters
    only where the font has them (``glyph``)."""
    return [
        (0.40, lambda rng: glyph(rng, font_files, drawn_only)),
        (0.16, scribble),
        (0.14, texture),
        (0.14, scene),
        (0.06, lambda rng: text_page(rng, font_files)),
        (0.10, lambda rng: several_digits(digits, rng)),
    ]


def _render_chunk(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Render one chunk of the training extras; runs in a worker process."""
    kind, items, seed, extra = job
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    if kind == "negative":
        renderers = negative_renderers(extra["fonts"], extra["digits"], extra["drawn_only"])
        shares = np.array([share for share, _ in renderers])
        for _ in range(items):
            render = renderers[int(rng.choice(len(renderers), p=shares / shares.sum()))][1]
            drawn = network_input(render(rng))
            inputs.append(None if drawn is None or one_upright_bar(drawn) else drawn)
            labels.append(NOT_A_DIGIT)
    else:
        render = {"world": world_variant, "pen": pen_variant, "bitmap": bitmap_variant}[kind]
        crossed_sevens = (extra or {}).get("crossed_sevens", 0.0)
        for item, label in items:
            # No draw for it at 0: the shipped recipe's draws as before.
            crossed = label == habits.SEVEN and crossed_sevens and rng.random() < crossed_sevens
            inputs.append(network_input(render(item, rng, True) if crossed else render(item, rng)))
            labels.append(label)
    kept = [i for i, x in enumerate(inputs) if x is not None]
    return (
        np.stack([inputs[i] for i in kept]).astype(np.float32),
        np.asarray([labels[i] for i in kept], dtype=np.int64),
    )


def chunked(
    kind: str, items: list, seed: int, size: int = 2000, extra: dict | None = None
) -> list[tuple]:
    return [
        (kind, items[start : start + size], seed * 1000 + start // size, extra)
        for start in range(0, len(items), size)
    ]


@dataclass(frozen=True)
class Extras:
    inputs: np.ndarray  # (n, 28, 28) float32, as the service normalises them
    labels: np.ndarray  # (n,) int64, 10 = not a digit
    counts: dict[str, int]


WORLD_VARIANTS = 2  # world variants rendered per MNIST training digit
REAL_VARIANTS = 2  # variants rendered per pendigits trajectory and per optdigits bitmap
NEGATIVES_PER_DIGIT = 0.9  # non-digits rendered per MNIST training digit


def _negative_jobs(count: int, seed: int, digits: np.ndarray, habits: dict) -> list:
    size, drawn_only = 2000, habits.get("drawn_letters", False)
    extra = {"fonts": fonts(training=True), "digits": digits, "drawn_only": drawn_only}
    return [
        ("negative", min(size, count - start), seed * 1000 + 500 + start // size, extra)
        for start in range(0, count, size)
    ]


def _collect(named_jobs: dict[str, list], workers: int | None) -> Extras:
    jobs = [job for group in named_jobs.values() for job in group]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A fork server's workers: a fork copies the caller's threads' locks, and may hang.
    forkserver = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=forkserver) as pool:
        results = list(pool.map(_render_chunk, jobs))
    counts, start = {}, 0
    for name, group in named_jobs.items():
        counts[name] = int(sum(len(y) for _, y in results[start : start + len(group)]))
        start += len(group)
    inputs = np.concatenate([x for x, _ in results])
    # Kept as 8-bit grey levels, as MNIST's own: a saved set loads back unchanged.
    levels = np.round(inputs * 255.0) / np.float32(255.0)
    return Extras(levels.astype(np.float32), np.concatenate([y for _, y in results]), counts)


def training_extras(training, real, seed: int, workers: int | None = None, habits=None) -> Extras:
    """World variants of every training digit, the real training writers, non-digits.
    ``habits``, the recipe's departures from the shipped one (which has none):
    ``crossed_sevens``, a share of the 7s crossed (``model.habits``); ``drawn_letters``,
    letters only where the font has them (``glyph``'s ``drawn_only``)."""
    habits = habits or {}
    digits = list(zip(training.images, training.labels.tolist(), strict=True))
    pens = [(pen, pen.label) for pen in real.pen_train]
    bitmaps = list(zip(real.opt_train.images, real.opt_train.labels.tolist(), strict=True))
    if len(digits) < 10_000:  # a smoke run: keep the extras in proportion
        pens, bitmaps = pens[: len(digits) // 4], bitmaps[: len(digits) // 4]
    negatives = round(NEGATIVES_PER_DIGIT * len(digits))
    return _collect(
        {
            "world variants of MNIST training digits": chunked(
                "world", digits * WORLD_VARIANTS, seed, extra=habits
            ),
            "pendigits training writers": chunked(
                "pen", pens * REAL_VARIANTS, seed + 1, extra=habits
            ),
            "optdigits training writers": chunked("bitmap", bitmaps * REAL_VARIANTS, seed + 2),
            "not a digit": _negative_jobs(negatives, seed, training.images, habits),
        },
        workers,
    )


def validation_extras(validation, seed: int, workers: int | None = None, habits=None) -> Extras:
    """World variants of the validation digits and non-digits of other seeds: the
    data that picks the epoch and fits the temperature and the threshold (``habits``
    as ``training_extras``')."""
    habits = habits or {}
    digits = list(zip(validation.images, validation.labels.tolist(), strict=True))
    negatives = round(NEGATIVES_PER_DIGIT * len(digits))
    return _collect(
        {
            "world variants of MNIST validation digits": chunked(
                "world", digits, seed + 7, extra=habits
            ),
            "not a digit": _negative_jobs(negatives, seed + 7, validation.images, habits),
        },
        workers,
    )
