"""Hostile and odd uploads (issue 7): each gets a fast, documented answer, and the
service lives on with its memory bounded.

The corpus is generated here, never downloaded. Every case runs in-process
(TestClient re-raises any server-side exception, so a bug shows its traceback)
and against a real server; what needs a socket (chunked bodies without a
Content-Length, slow clients, thousands of parts) runs against the server only.
"""

from __future__ import annotations

import io
import random
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.config import Settings
from tests.app.conftest import FAST, MAX_RSS, rss
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import LiveServer
from tests.deploy import limits

DOCUMENTED = {200, 400, 408, 413, 415, 422}  # /predict's answers once the model is loaded
JSON = "application/json"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    status: int
    content_type: str = "image/png"
    digit: int | None = None  # what a 200 must read; None: a mark that is no digit


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@cache
def digit(size: int = 160) -> Image.Image:
    return stroke_digit(size)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header for a huge grey image, with a few bytes of pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(bytes(64)))
        + png_chunk(b"IEND", b"")
    )


def png_with_text_bomb() -> bytes:
    """A small PNG carrying a zTXt chunk that inflates to 64 MB."""
    image = encode(digit(), "PNG")
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(64 << 20), 9))
    return image[:33] + bomb + image[33:]  # right after the IHDR chunk


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG's header with the frame size patched, ending after the frame header."""
    data = bytearray(encode(digit().convert("RGB"), "JPEG"))
    start = data.index(b"\xff\xc0")
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    length = struct.unpack(">H", data[start + 2 : start + 4])[0]
    return bytes(data[: start + 2 + length])


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(digit(), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(digit(), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def one_bit_bomb() -> bytes:
    """12000×12000 1-bit: 144 Mpx, under Pillow's own bomb limit, a few kB on the wire."""
    image = Image.new("1", (12000, 12000), 1)
    ImageDraw.Draw(image).line([(3000, 3000), (9000, 9000)], fill=0, width=600)
    return encode(image, "PNG", optimize=False)


def at_the_pixel_limit() -> bytes:
    """4000×4000 = exactly MAX_PIXELS: allowed, decoded in a worker thread."""
    image = Image.new("L", (4000, 4000), 255)
    ImageDraw.Draw(image).line([(1000, 800), (3000, 3200)], fill=0, width=300)
    return encode(image, "PNG")


def animated_gif(frames: int = 500) -> bytes:
    """Hundreds of frames, each different; the first one is a digit."""
    rest = []
    for index in range(frames):
        frame = Image.new("L", (96, 96), 255)
        ImageDraw.Draw(frame).line([(index % 96, 0), (95 - index % 96, 95)], fill=0, width=5)
        rest.append(frame)
    return encode(digit(96), "GIF", save_all=True, append_images=rest, duration=10, loop=0)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def palette_with_transparency() -> bytes:
    """A canvas drawing: dark strokes on a transparent palette background."""
    image = Image.new("P", (160, 160), 0)
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    draw = ImageDraw.Draw(image)
    draw.line([(40, 30), (120, 30), (70, 140)], fill=1, width=14)
    return encode(image, "PNG", transparency=0)


def grey_16_bit() -> bytes:
    image = Image.fromarray(np.asarray(digit(), dtype=np.uint16) * 257)
    assert image.mode == "I;16"
    return encode(image, "PNG")


def cielab_tiff(size: int = 160) -> bytes:
    """A digit in a CIELab TIFF (as scanners and Photoshop write them): Pillow
    converts LAB to RGB only, and the service reads grey levels."""
    from PIL import ImageCms

    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    rgb = digit(size).convert("RGB")
    image = ImageCms.applyTransform(rgb, ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))
    assert image.mode == "LAB"
    return encode(image, "TIFF", compression="tiff_adobe_deflate")


def float_tiff_of_nan() -> bytes:
    return encode(Image.fromarray(np.full((64, 64), np.nan, dtype=np.float32)), "TIFF")


def thin_strip() -> bytes:
    image = Image.new("L", (16000, 1), 255)
    ImageDraw.Draw(image).line([(7000, 0), (9000, 0)], fill=0)
    return encode(image, "PNG")


def random_bytes() -> bytes:
    return random.Random(7).randbytes(50_000)


CORPUS = [
    # Not images, or not readable ones.
    Case("zero bytes", lambda: b"", 400),
    Case("random bytes", random_bytes, 415),
    Case("html", lambda: b"<!doctype html><html><body><img src=x></body></html>", 415),
    Case(
        "svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>',
        415,
        "image/svg+xml",
    ),
    Case("pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", 415),
    Case("text", lambda: b"seven\n" * 100, 415, "text/plain"),
    Case("truncated png", lambda: truncated(encode(digit(), "PNG")), 415),
    Case("truncated jpeg", lambda: truncated(encode(digit(), "JPEG")), 415, "image/jpeg"),
    Case("truncated webp", lambda: truncated(encode(digit(), "WEBP")), 415, "image/webp"),
    Case("png signature only", lambda: b"\x89PNG\r\n\x1a\n", 415),
    Case("png with a 64 MB text chunk", png_with_text_bomb, 415),
    # Decompression bombs and lying headers.
    Case("png claiming 60000x60000", lambda: png_claiming(60000, 60000), 413),
    Case("1-bit png of 12000x12000", one_bit_bomb, 413),
    Case("jpeg header claiming 65000x65000", lambda: jpeg_claiming(65000, 65000), 413),
    Case("gif claiming 65535x65535", lambda: gif_claiming(65535, 65535), 413, "image/gif"),
    Case("bmp claiming 60000x60000", lambda: bmp_claiming(60000, 60000), 413, "image/bmp"),
    Case("png claiming 0x0", lambda: png_claiming(0, 0), 415),
    Case("png at the pixel limit", at_the_pixel_limit, 200, digit=1),
    # Odd but real images.
    Case("animated gif, 500 frames", animated_gif, 200, "image/gif", 7),
    Case("16-bit grey png", grey_16_bit, 200, digit=7),
    Case("cmyk jpeg", lambda: encode(digit().convert("CMYK"), "JPEG"), 200, "image/jpeg", 7),
    Case("cmyk tiff", lambda: encode(digit().convert("CMYK"), "TIFF"), 200, "image/tiff", 7),
    Case("palette with transparency", palette_with_transparency, 200, digit=7),
    Case("cielab tiff", cielab_tiff, 200, "image/tiff", 7),
    Case("large cielab tiff", lambda: cielab_tiff(1200), 200, "image/tiff", 7),
    Case("1x1", lambda: encode(Image.new("L", (1, 1), 0), "PNG"), 422),
    Case("all one colour", lambda: encode(Image.new("RGB", (300, 200), (90, 30, 200)), "PNG"), 422),
    Case("float tiff of NaN", float_tiff_of_nan, 422, "image/tiff"),
    Case("16000x1 strip with a dash", thin_strip, 422),  # a dash: refused, as no digit
    Case("fully transparent", lambda: encode(Image.new("RGBA", (64, 64)), "PNG"), 422),
    # The declared content type lies; the bytes decide.
    Case("png sent as jpeg", lambda: encode(digit(), "PNG"), 200, "image/jpeg", 7),
    Case("jpeg sent as pdf", lambda: encode(digit(), "JPEG"), 200, "application/pdf", 7),
    Case("gif sent as text", lambda: encode(digit(), "GIF"), 200, "text/plain", 7),
]


@cache
def corpus_bytes(name: str) -> bytes:
    return next(case for case in CORPUS if case.name == name).build()


def check_answer(response: httpx.Response, case: Case, seconds: float) -> None:
    name = case.name
    assert response.status_code == case.status, (name, response.status_code, response.text[:200])
    assert response.status_code in DOCUMENTED
    assert response.headers["content-type"] == JSON, name
    body = response.json()
    if case.status == 200:
        expected = range(10) if case.digit is None else [case.digit]
        assert body["digit"] in expected, (name, body["digit"])
    else:
        assert isinstance(body["detail"], str) and body["detail"], name
    assert seconds < FAST, f"{name}: answered in {seconds:.2f} s"


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_in_process(client: TestClient, case: Case) -> None:
    data = corpus_bytes(case.name)
    started = time.perf_counter()
    response = client.post("/predict", files={"file": ("upload", data, case.content_type)})
    check_answer(response, case, time.perf_counter() - started)


def test_in_a_batch_each_file_gets_its_own_answer(client: TestClient) -> None:
    cases = [case for case in CORPUS if case.name != "png at the pixel limit"]  # keep it quick
    files = [("files", (case.name, corpus_bytes(case.name), case.content_type)) for case in cases]
    for start in range(0, len(files), 16):
        response = client.post("/predict/batch", files=files[start : start + 16])
        assert response.status_code == 200
        sent = cases[start : start + 16]
        items = response.json()["predictions"]
        assert [item["filename"] for item in items] == [case.name for case in sent]
        for case, item in zip(sent, items, strict=True):
            status = item["error"]["status"] if item.get("error") else 200
            assert status == case.status, case.name
            if case.digit is not None:
                assert item["prediction"]["digit"] == case.digit, case.name


# ---------------------------------------------------------------------------------------
# Against a real server


@pytest.mark.slow
def test_the_corpus_over_http(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for case in CORPUS:
            data = corpus_bytes(case.name)
            started = time.perf_counter()
            response = http.post("/predict", files={"file": ("upload", data, case.content_type)})
            check_answer(response, case, time.perf_counter() - started)
            assert http.get("/health/ready").status_code == 200, case.name
    assert server.process is not None
    assert rss(server.process.pid)["VmHWM"] < MAX_RSS


def flood_image() -> bytes:
    """A 16 MP CMYK TIFF of ~100 kB: ~190 MB while decoded, the costliest upload."""
    image = Image.new("L", (4000, 4000), 255)
    ImageDraw.Draw(image).line([(1000, 800), (3000, 3200)], fill=0, width=300)
    return encode(image.convert("CMYK"), "TIFF", compression="tiff_adobe_deflate")


FLOOD = 16  # concurrent uploads of flood_image()


@pytest.mark.slow
def test_a_flood_of_large_images_keeps_memory_bounded_and_small_ones_quick(
    make_server: Callable[..., LiveServer], model_path: Path
) -> None:
    """Sixteen 16 MP images at once: all answered, the server's peak RSS under the
    container's limit less its headroom (tests/deploy/limits.py), and a small
    digit sent meanwhile read within FAST: what INLINE_MAX_PIXELS (small images on
    the event loop) and LARGE_IMAGE_CONCURRENCY (large ones in threads, a few at a
    time) promise. Both are set as the deployment leaves them, its defaults."""
    defaults = Settings()
    small = encode(digit(200), "PNG")
    assert 200 * 200 <= defaults.inline_max_pixels < 4000 * 4000
    server = make_server(
        {
            "MODEL_PATH": str(model_path),
            "INLINE_MAX_PIXELS": str(defaults.inline_max_pixels),
            "LARGE_IMAGE_CONCURRENCY": str(defaults.large_image_concurrency),
        }
    ).start()
    assert server.process is not None
    idle = rss(server.process.pid)["VmRSS"]
    assert idle < limits.idle_rss_allowed(), f"idle RSS {idle / 2**20:.0f} MiB"
    data = flood_image()
    statuses: list[int] = []

    def upload() -> None:
        response = httpx.post(
            f"{server.url}/predict", files={"file": ("big.tif", data, "image/tiff")}, timeout=120
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=upload) for _ in range(FLOOD)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=server.url, timeout=FAST * 5) as http:
        deadline = time.monotonic() + 30
        while in_flight(http) < FLOOD + 1:  # the flood, and this scrape
            assert time.monotonic() < deadline, "the flood never arrived"
            time.sleep(0.05)
        answered = 0
        while in_flight(http) > 2:  # the flood is still being read
            started = time.perf_counter()
            response = http.post("/predict", files={"file": ("7.png", small, "image/png")})
            seconds = time.perf_counter() - started
            assert response.status_code == 200 and response.json()["digit"] == 7
            assert seconds < FAST, f"a small digit took {seconds:.2f} s during the flood"
            answered += 1
            time.sleep(0.2)
    for thread in threads:
        thread.join()
    assert statuses == [200] * FLOOD
    assert answered >= 1
    peak = rss(server.process.pid)["VmHWM"]
    print(f"flood of {FLOOD}: idle RSS {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB")
    assert peak < MAX_RSS, f"peak RSS {peak / 2**20:.0f} MiB, allowed {MAX_RSS / 2**20:.0f} MiB"


def in_flight(http: httpx.Client) -> float:
    """The server's requests in flight, the /metrics request itself included."""
    metrics = http.get("/metrics").text
    return float(re.search(r"^digits_http_requests_in_flight (\S+)$", metrics, re.M).group(1))
