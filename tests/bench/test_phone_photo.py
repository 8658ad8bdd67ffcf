"""bench/phone_photo.py: its HEIC is tiled as a phone's, and each step is timed."""

from __future__ import annotations

import io

import pillow_heif
from PIL import Image

from bench import phone_photo
from tests.app.test_preprocessing import stroke_digit


def saved(name: str, image: Image.Image) -> bytes:
    format, _, options = phone_photo.FORMATS[name]
    if format == "HEIF":
        options = {**options, "enc_params": {"preset": "ultrafast"}}
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_the_heic_is_stored_in_512_px_tiles_as_a_phone_stores_it() -> None:
    data = saved("heic", Image.new("RGB", (1100, 600), (200, 190, 180)))
    tiling = pillow_heif.open_heif(io.BytesIO(data)).info["tiling"]
    assert (tiling["tile_width"], tiling["num_columns"], tiling["num_rows"]) == (512, 3, 2)


def test_each_preprocessing_step_is_timed() -> None:
    photo = Image.new("L", (900, 700), 230)
    photo.paste(stroke_digit(400, paper=230), (250, 150))
    for name in phone_photo.FORMATS:
        steps = phone_photo.stages(saved(name, photo.convert("RGB")), repeats=1)
        assert list(steps) == [
            "open_and_check_header",
            "codec_full_size",
            "decode",
            "grey_levels",
            "ink_and_fit",
            "preprocessing_all_steps",
        ]
        assert all(ms >= 0 for ms in steps.values()), (name, steps)
