"""HEIC/HEIF and AVIF uploads (issue 21): read like the other formats, with the
same guarantees: the declared size checked before any pixel is decoded, the
orientation applied, the primary image of a sequence read, any depth and alpha,
and a clear 4xx for what cannot be read.

Every file is written here with pillow-heif (HEIC) and Pillow (AVIF).
"""

from __future__ import annotations

import asyncio
import io
import struct
import time

import numpy as np
import pillow_heif
import pytest
from fastapi.testclient import TestClient
from PIL import AvifImagePlugin, Image, ImageFile

from app import heif, predictor, preprocessing, rejection
from app.config import Settings
from app.main import create_app
from app.preprocessing import ImageTooLargeError, UnsupportedImageError, preprocess
from model import data, uploads
from tests.app.conftest import rss
from tests.app.handwriting import draw_number
from tests.app.test_accuracy import read_all
from tests.app.test_hostile_inputs import Case, check_answer
from tests.app.test_predictor_threads import threaded_images
from tests.app.test_preprocessing import difference, stroke_digit
from tests.app.test_rejection import coins_photo
from tests.conftest import LiveServer, png_bytes

FORMATS = ["HEIF", "AVIF"]
COUNT = 12  # phone photos of each format in the paired accuracy test
EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, format: str, **options) -> bytes:
    if format == "HEIF":  # x265's fastest preset: seconds less per test, same container
        options = {"quality": 90, "enc_params": {"preset": "ultrafast"}, **options}
    else:
        options = {"quality": 90, "speed": 8, **options}
    return png_bytes(image, format, **options)


def reference(size: int = 200) -> np.ndarray:
    return preprocess(png_bytes(stroke_digit(size)))


def one(size: int = 200) -> Image.Image:
    """A '1': one upright stroke, to tell other frames from the '7'."""
    image = Image.new("L", (size, size), 255)
    image.paste(0, (size // 2 - 10, size // 5, size // 2 + 10, size * 4 // 5))
    return image


def claiming(data: bytes, width: int, height: int) -> bytes:
    """The file with every image item's declared size (ispe) changed; pixels kept."""
    patched = bytearray(data)
    position = patched.find(b"ispe")
    assert position > 0
    while position > 0:
        patched[position + 8 : position + 16] = struct.pack(">II", width, height)
        position = patched.find(b"ispe", position + 4)
    return bytes(patched)


def track_claiming(data: bytes, width: int, height: int) -> bytes:
    """An image sequence with its track's size (tkhd, 16.16 fixed point) changed."""
    patched = bytearray(data)
    position = patched.index(b"tkhd")
    end = position - 4 + struct.unpack(">I", patched[position - 4 : position])[0]
    patched[end - 8 : end] = struct.pack(">II", width << 16, height << 16)
    return bytes(patched)


def sequence(format: str, frames: list[Image.Image]) -> bytes:
    return encode(frames[0].convert("RGB"), format, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("format", FORMATS)
def test_read_like_a_png(format: str) -> None:
    data = encode(stroke_digit().convert("RGB"), format)
    assert preprocessing.open_image(data).format == format
    assert difference(preprocess(data), reference()) < 0.03


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_a_rotated_phone_photo_reads_upright(
    format: str, orientation: int, stored_as: Image.Transpose
) -> None:
    """The pixels stored as the sensor saw them, the orientation beside them: HEIC
    keeps it in the container (libheif applies it), AVIF too (Pillow reports it as
    EXIF, which the service applies)."""
    upright = Image.new("L", (300, 200), 230)
    upright.paste(stroke_digit(180, paper=230), (60, 10))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    data = encode(upright.transpose(stored_as).convert("RGB"), format, exif=exif.tobytes())
    expected = preprocess(png_bytes(upright))
    assert difference(preprocess(data), expected) < 0.05  # a JPEG at quality 90: 0.033
    stored = preprocess(png_bytes(upright.transpose(stored_as)))
    assert difference(stored, expected) > 0.1  # the test would notice a missed turn


@pytest.mark.parametrize("twelve_bit", [False, True], ids=["10-bit", "12-bit"])
def test_high_bit_depth_heic(monkeypatch: pytest.MonkeyPatch, twelve_bit: bool) -> None:
    monkeypatch.setattr(pillow_heif.options, "SAVE_HDR_TO_12_BIT", twelve_bit)
    grey = np.asarray(stroke_digit(), dtype=np.uint16) * 257
    rgb = np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    container = pillow_heif.from_bytes("RGB;16", (200, 200), rgb.tobytes())
    buffer = io.BytesIO()
    container.save(buffer, quality=90, enc_params={"preset": "ultrafast"})
    data = buffer.getvalue()
    depth = pillow_heif.open_heif(data, convert_hdr_to_8bit=False).info["bit_depth"]
    assert depth == (12 if twelve_bit else 10)
    assert difference(preprocess(data), reference()) < 0.03


def test_high_bit_depth_grey_heic() -> None:
    grey = np.asarray(stroke_digit(), dtype=np.uint16) * 257
    data = encode(Image.fromarray(grey), "HEIF")
    assert preprocessing.open_image(data).mode == "I;16"
    assert difference(preprocess(data), reference()) < 0.03


@pytest.mark.parametrize("format", FORMATS)
def test_a_canvas_drawing_with_alpha(format: str) -> None:
    """Dark strokes on transparency, the transparent pixels black as well."""
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = 20
    rgba[..., 3] = 255 - np.asarray(stroke_digit())
    data = encode(Image.fromarray(rgba, "RGBA"), format)
    assert preprocessing.open_image(data).mode == "RGBA"
    assert difference(preprocess(data), reference()) < 0.03


@pytest.mark.parametrize("format", FORMATS)
def test_the_first_image_of_a_sequence(format: str) -> None:
    data = sequence(format, [stroke_digit(), *[one()] * 5])
    assert preprocessing.open_image(data).n_frames == 6
    assert difference(preprocess(data), reference()) < 0.03
    assert difference(preprocess(sequence(format, [one(), stroke_digit()])), reference()) > 0.03


def test_a_multi_image_heic_reads_its_primary_image() -> None:
    """The image a viewer shows is the primary one, wherever it is in the file."""
    data = encode(one().convert("RGB"), "HEIF", save_all=True, append_images=[stroke_digit()])
    data_primary_second = encode(
        one().convert("RGB"),
        "HEIF",
        save_all=True,
        append_images=[stroke_digit().convert("RGB")],
        primary_index=1,
    )
    assert difference(preprocess(data_primary_second), reference()) < 0.03
    assert difference(preprocess(data), reference()) > 0.03


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_files_are_415_with_a_clear_detail(format: str, keep: float) -> None:
    data = encode(stroke_digit().convert("RGB"), format)
    with pytest.raises(UnsupportedImageError, match=r"truncated|corrupt|could not be decoded"):
        preprocess(data[: int(len(data) * keep)])


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("side", [60000, 5000])
def test_a_huge_declared_size_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, format: str, side: int
) -> None:
    """A few hundred bytes of pixels behind a header that declares side×side: refused
    from the header, with no decoder run (5000×5000 is within the decoders' own
    limits, 60000×60000 beyond them)."""
    data = claiming(encode(stroke_digit(64).convert("RGB"), format), side, side)
    assert heif.claimed_size(data) == (side, side)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a pixel was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(pillow_heif.as_plugin._LibHeifImageFile, "load", no_decoding)
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match=f"{side}x{side}"):
        preprocess(data)


def test_an_image_sequence_whose_track_declares_a_huge_size() -> None:
    data = track_claiming(sequence("AVIF", [stroke_digit(), one()]), 60000, 60000)
    assert heif.claimed_size(data) == (60000, 60000)
    with pytest.raises(ImageTooLargeError, match="60000x60000"):
        preprocess(data)


def photo_of(side: int) -> Image.Image:
    """A side×3/4·side photo-like picture (a pattern, not one colour: the AV1 and
    HEVC encoders keep its size but not much else)."""
    pattern = np.random.default_rng(0).integers(0, 255, (side // 40, side // 30, 3))
    return Image.fromarray(pattern.astype(np.uint8)).resize((side, side * 3 // 4))


def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def decoded(*args, **kwargs):
        raise AssertionError("a pixel was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", decoded)
    monkeypatch.setattr(Image.Image, "load", decoded)


SMALL_LIMIT = preprocessing.Limits(max_pixels=500_000)  # under the 1200×900 frames below


def test_a_small_claim_over_a_larger_av1_frame_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The AV1 decoder allocates the frame its sequence header describes, whatever
    the container claims (libavif accepts up to 16384×16384): the frame is held to
    the pixel limit too, from its sequence header, before any decoder runs."""
    genuine = encode(photo_of(1200), "AVIF", quality=30, speed=10)
    assert heif.coded_size(genuine) == (1200, 900)
    data = claiming(genuine, 100, 100)
    assert heif.claimed_size(data) == (100, 100)
    no_decoding(monkeypatch)
    with pytest.raises(ImageTooLargeError, match=r"declares 100x100 .* frames of 1200x900"):
        preprocessing.open_image(data, SMALL_LIMIT)
    undeclared = genuine.replace(b"ispe", b"free")  # no size declared at all
    assert heif.claimed_size(undeclared) is None
    with pytest.raises(ImageTooLargeError, match=r"image its AV1 stream holds frames of 1200x900"):
        preprocessing.open_image(undeclared, SMALL_LIMIT)


def test_an_image_sequence_whose_frames_outgrow_its_track(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AVIF sequence whose track and item claim 100×100 over 1200×900 frames; the
    track's own first sample is read as well as the item's (here without the item)."""
    frames = [photo_of(1200), photo_of(1200).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    genuine = encode(
        frames[0], "AVIF", quality=30, speed=10, save_all=True, append_images=frames[1:]
    )
    data = track_claiming(claiming(genuine, 100, 100), 100, 100)
    assert heif.claimed_size(data) == (100, 100)
    tracks_only = data.replace(b"meta", b"free", 1)  # the item gone: the track alone tells
    assert heif.coded_size(tracks_only) == (1200, 900)
    no_decoding(monkeypatch)
    with pytest.raises(ImageTooLargeError, match="frames of 1200x900"):
        preprocessing.open_image(data, SMALL_LIMIT)


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def scattered_item() -> bytes:
    """An AVIF of a few dozen bytes whose one AV1 item is placed in 65535 pieces,
    each the whole file (fields of size 0): gathered, 65535 times the file."""
    item_info = box(b"infe", bytes([2, 0, 0, 0]) + struct.pack(">HH", 1, 0) + b"av01")
    locations = bytes([1, 0, 0, 0, 0, 0]) + struct.pack(">HHHHH", 1, 1, 0, 0, 65535)
    meta = box(b"iinf", bytes(4) + struct.pack(">H", 1) + item_info) + box(b"iloc", locations)
    return box(b"ftyp", b"avif" + bytes(4) + b"mif1avif") + box(b"meta", bytes(4) + meta)


def test_an_item_in_more_pieces_than_the_file_holds_is_415() -> None:
    with pytest.raises(UnsupportedImageError, match="item locations are corrupt"):
        preprocess(scattered_item())


def test_a_small_claim_over_a_larger_hevc_frame_is_refused_by_libheif() -> None:
    """libheif checks a HEIC's coded frame against its declared size before it
    allocates the frame: 415, nothing decoded at the coded size."""
    data = claiming(encode(photo_of(1200), "HEIF", quality=30), 100, 100)
    with pytest.raises(UnsupportedImageError, match="could not be decoded"):
        preprocess(data)


def test_a_small_claim_over_a_larger_frame_is_413_over_http(settings: Settings) -> None:
    data = claiming(encode(photo_of(1200), "AVIF", quality=30, speed=10), 100, 100)
    with TestClient(create_app(settings.model_copy(update={"max_pixels": 500_000}))) as http:
        response = http.post("/predict", files={"file": ("photo.avif", data, "image/avif")})
        assert response.status_code == 413
        assert "frames of 1200x900 = 1,080,000 pixels" in response.json()["detail"]
        assert http.get("/health/ready").status_code == 200


def test_declared_sizes_are_read_only_from_heif_family_files() -> None:
    assert heif.claimed_size(png_bytes(stroke_digit())) is None
    assert heif.claimed_size(b"\x00\x00\x00\x18ftypisom" + bytes(64)) is None
    assert heif.claimed_size(b"\x00\x00\x00\x10ftypheic" + bytes(4)) is None  # no meta
    data = encode(stroke_digit(64).convert("RGB"), "AVIF")
    assert heif.claimed_size(data) == (64, 64)
    assert heif.claimed_size(data[:40]) is None  # cut inside the header


def test_heic_and_avif_are_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even small ones: their decoders cost milliseconds, and size their frame from
    the codec stream, which the container's declared size does not bind."""
    threaded = threaded_images(monkeypatch)
    reader = predictor.Predictor(None, Settings())  # _normalize() needs no network
    small = stroke_digit(64).convert("RGB")
    for format in ("PNG", *FORMATS):
        asyncio.run(
            reader._normalize(encode(small, format) if format != "PNG" else png_bytes(small))
        )
    assert [format for format, _ in threaded] == FORMATS


def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The format of each HEIC or AVIF decoded from now on, in order."""
    decodes: list[str] = []
    for plugin in (pillow_heif.as_plugin._LibHeifImageFile, AvifImagePlugin.AvifImageFile):
        load = plugin.load

        def counted(self, load=load):
            if self.tile or getattr(self, "_heif_file", None) is not None:
                decodes.append(self.format)
            return load(self)

        monkeypatch.setattr(plugin, "load", counted)
    return decodes


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("path", ["/predict", "/read"])
def test_a_refused_photo_is_decoded_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, format: str, path: str
) -> None:
    """The refusal path looks at the decoded image again rather than run the HEIC or
    AVIF decoder a second time (a second or more for a 12 MP HEIC)."""
    decodes = counted_decodes(monkeypatch)
    photo = Image.open(io.BytesIO(coins_photo()))
    response = client.post(path, files={"file": ("coins", encode(photo, format), "")})
    assert response.status_code == 422
    assert rejection.PHOTO in response.json()["detail"]
    assert decodes == [format]


@pytest.mark.parametrize("format", FORMATS)
def test_one_digit_read_whole_is_decoded_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, format: str
) -> None:
    """/read reads a line of one digit as /predict reads the image, from the image it
    decoded (Predictor._alone)."""
    decodes = counted_decodes(monkeypatch)
    image, _ = draw_number("4")
    response = client.post(
        "/read", files={"file": ("four", encode(image.convert("RGB"), format), "")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["number"] == "4"
    assert decodes == [format]


@pytest.mark.slow
@pytest.mark.timeout(600)  # x265 takes a second or more per photo on a busy machine
def test_heic_and_avif_photos_read_as_well_as_jpeg(client: TestClient, mnist: data.Mnist) -> None:
    """The same photos (model.uploads renders the same pixels for each of the three
    kinds alone), saved as JPEG, HEIC and AVIF: the phone formats misread at most
    one more of the COUNT than the JPEGs do."""
    held_out = uploads.held_out_digits(mnist)
    right = {}
    for kind in ("photo", "heic", "avif"):
        rendered = list(uploads.uploads(held_out, COUNT, seed=11, kinds=[kind]))
        files = [(u.filename, u.content, u.content_type) for u in rendered]
        digits = read_all(client, files)
        right[kind] = sum(d == u.label for d, u in zip(digits, rendered, strict=True))
    print(f"photos read right of {COUNT}: {right}")
    assert right["photo"] >= COUNT - 1
    assert right["heic"] >= right["photo"] - 1 and right["avif"] >= right["photo"] - 1


# ---------------------------------------------------------------------------------------
# Over HTTP: each hostile file gets a documented 4xx within 2 s, the server lives on.


def corrupt_heic() -> bytes:
    """A HEIC whose coded picture is overwritten with bytes that are not HEVC."""
    data = bytearray(encode(stroke_digit().convert("RGB"), "HEIF"))
    start = data.index(b"mdat") + 4
    data[start:] = bytes(range(256)) * ((len(data) - start) // 256) + bytes(
        (len(data) - start) % 256
    )
    return bytes(data)


def heic(image: Image.Image, **options) -> bytes:
    return encode(image.convert("RGB"), "HEIF", **options)


def avif(image: Image.Image, **options) -> bytes:
    return encode(image.convert("RGB"), "AVIF", **options)


CORPUS = [
    Case("heic", lambda: heic(stroke_digit()), 200, "image/heic", 7),
    Case("avif", lambda: avif(stroke_digit()), 200, "image/avif", 7),
    Case("heic sent as jpeg", lambda: heic(stroke_digit()), 200, "image/jpeg", 7),
    Case("avif sequence", lambda: sequence("AVIF", [stroke_digit(), one()]), 200, "image/avif", 7),
    Case("heic claiming 60000x60000", lambda: claiming(heic(stroke_digit(64)), 60000, 60000), 413),
    Case("avif claiming 60000x60000", lambda: claiming(avif(stroke_digit(64)), 60000, 60000), 413),
    Case(
        "avif track claiming 60000x60000",
        lambda: track_claiming(sequence("AVIF", [stroke_digit(), one()]), 60000, 60000),
        413,
    ),
    Case("avif item in 65535 pieces", scattered_item, 415, "image/avif"),
    Case("heic claiming 0x0", lambda: claiming(heic(stroke_digit(64)), 0, 0), 415),
    Case("heic claiming 4000x4000", lambda: claiming(heic(stroke_digit(64)), 4000, 4000), 415),
    Case("truncated heic", lambda: heic(stroke_digit())[:400], 415, "image/heic"),
    Case("truncated avif", lambda: avif(stroke_digit())[:300], 415, "image/avif"),
    Case("heic header only", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", 415),
    Case("corrupt heic", corrupt_heic, 415, "image/heic"),
    Case("blank heic", lambda: heic(Image.new("L", (300, 200), 128)), 422, "image/heic"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_in_process(client: TestClient, case: Case) -> None:
    data = case.build()
    started = time.perf_counter()
    response = client.post("/predict", files={"file": ("upload", data, case.content_type)})
    check_answer(response, case, time.perf_counter() - started)


def test_in_a_batch(client: TestClient) -> None:
    files = [("files", (case.name, case.build(), case.content_type)) for case in CORPUS]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200
    for case, item in zip(CORPUS, response.json()["predictions"], strict=True):
        assert (item["error"]["status"] if item.get("error") else 200) == case.status, case.name


@pytest.mark.slow
def test_the_corpus_over_http(server: LiveServer) -> None:
    import httpx

    with httpx.Client(base_url=server.url, timeout=10) as http:
        for case in CORPUS:
            started = time.perf_counter()
            response = http.post(
                "/predict", files={"file": ("upload", case.build(), case.content_type)}
            )
            check_answer(response, case, time.perf_counter() - started)
            assert http.get("/health/ready").status_code == 200, case.name
    assert server.process is not None
    assert rss(server.process.pid)["VmHWM"] < 1 << 30
