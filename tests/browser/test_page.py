"""The draw-a-digit page at GET /, in headless Chromium: draw, upload, drop, errors, phone."""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserLog

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

Point = tuple[float, float]  # a fraction of the canvas's width and height
Stroke = Sequence[Point]

# Digits as pen strokes, drawn the way people write them.
STROKES: dict[str, list[Stroke]] = {
    "1": [[(0.5, 0.15), (0.5, 0.85)]],
    "7": [[(0.25, 0.2), (0.75, 0.2)], [(0.75, 0.2), (0.42, 0.85)]],
    "4": [[(0.6, 0.85), (0.6, 0.15), (0.22, 0.6), (0.8, 0.6)]],
}


def digit_png(digit: str, size: int = 200, width: int = 16) -> bytes:
    """A digit drawn with thick dark strokes on white, like ink on paper."""
    image = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        points = [(x * size, y * size) for x, y in stroke]
        pen.line(points, fill=20, width=width, joint="curve")
        for x, y in points:  # round ends
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=20)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def draw(page: Page, strokes: Sequence[Stroke]) -> None:
    """Draw with the mouse; each stroke must call /predict once, when the button is released."""
    box = page.get_by_test_id("canvas").bounding_box()
    assert box is not None

    def at(point: Point) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    for stroke in strokes:
        with page.expect_response(lambda r: "/predict" in r.url) as answer:
            page.mouse.move(*at(stroke[0]))
            page.mouse.down()
            for point in stroke[1:]:
                page.mouse.move(*at(point), steps=12)
            page.mouse.up()
        assert answer.value.ok, answer.value.text()
        expect(page.locator("body")).to_have_attribute("data-state", "done")


def predict_requests(page: Page) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/predict" in r.url else None)
    return requests


def expect_prediction(page: Page, digit: str) -> None:
    expect(page.get_by_test_id("error")).to_be_hidden()
    expect(page.get_by_test_id("prediction")).to_have_text(digit)
    expect(page.get_by_test_id("confidence")).to_have_text(re.compile(r"^\d+\.\d% confident"))
    bars = page.get_by_test_id("probabilities").get_by_role("listitem")
    expect(bars).to_have_count(10)
    expect(page.locator("#bars li.top")).to_have_attribute("data-digit", digit)
    percents = [float(text.rstrip("%")) for text in page.locator("#bars .value").all_inner_texts()]
    assert sum(percents) == pytest.approx(100, abs=1)
    assert max(percents) == percents[int(digit)]


def expect_preview(page: Page) -> None:
    """The 28×28 network input is shown, enlarged, with square pixels."""
    preview = page.get_by_test_id("preview")
    expect(preview).to_be_visible()
    expect(preview).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    size = preview.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size == [True, 28, 28]
    assert preview.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"
    box = preview.bounding_box()
    assert box is not None and box["width"] >= 4 * 28
    data = preview.get_attribute("src")
    assert data is not None
    image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1])))
    assert image.size == (28, 28)


def test_page_is_self_contained_and_accessible(open_page: Callable[..., Page], live_server):
    page = open_page("/")
    expect(page).to_have_title(re.compile("digits"))
    csp = httpx.get(live_server.url + "/", timeout=5).headers["content-security-policy"]
    assert "default-src 'self'" in csp

    # Links to the API docs and the model card, which the footer summarises.
    expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")
    expect(page.get_by_role("link", name="Model card")).to_have_attribute("href", "/model")
    model = httpx.get(live_server.url + "/model", timeout=5).json()
    expect(page.get_by_test_id("model-info")).to_contain_text(model["version"])

    # Everything has a name; the buttons and the file picker are reachable by keyboard.
    expect(page.get_by_role("img", name="Drawing area for one digit")).to_be_visible()
    expect(page.get_by_label("Choose an image file")).to_have_attribute("type", "file")
    reached = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert {"clear", "read", "file", "API docs", "Model card"} <= reached
    assert page.get_by_test_id("canvas").evaluate("c => getComputedStyle(c).touchAction") == "none"


@pytest.mark.parametrize("digit", ["1", "7"])
def test_drawing_with_the_mouse_shows_the_prediction(open_page: Callable[..., Page], digit: str):
    page = open_page("/", viewport={"width": 1000, "height": 900})
    requests = predict_requests(page)
    expect(page.get_by_test_id("prediction")).to_have_text("?")

    draw(page, STROKES[digit])

    assert len(requests) == len(STROKES[digit]), "one /predict call per stroke"
    expect_prediction(page, digit)
    expect(page.get_by_test_id("confidence")).to_contain_text("your drawing")
    expect_preview(page)
    if screenshot := os.environ.get("PAGE_SCREENSHOT"):  # the README's picture
        page.screenshot(path=screenshot)


def test_uploading_an_image_shows_the_prediction_and_input(open_page: Callable[..., Page]):
    page = open_page("/")
    file = {"name": "seven.png", "mimeType": "image/png", "buffer": digit_png("7")}

    page.get_by_label("Choose an image file").set_input_files(file)

    expect_prediction(page, "7")
    expect(page.get_by_test_id("confidence")).to_contain_text("seven.png")
    expect_preview(page)


@pytest.mark.parametrize(
    ("format", "name", "mime_type"),
    [("HEIF", "IMG_0007.HEIC", "image/heic"), ("AVIF", "seven.avif", "image/avif")],
)
def test_a_photo_saved_by_a_phone_is_read(
    open_page: Callable[..., Page], format: str, name: str, mime_type: str
):
    """HEIC (iPhones) and AVIF: offered by the file picker, read by the service."""
    from app import heif  # noqa: F401  (registers the HEIC plugin, which writes HEIC)

    page = open_page("/")
    picker = page.get_by_label("Choose an image file")
    accepted = picker.get_attribute("accept").split(",")
    assert {"image/*", ".heic", ".heif", ".avif"} <= set(accepted)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(digit_png("7"))).convert("RGB").save(buffer, format, quality=90)

    picker.set_input_files({"name": name, "mimeType": mime_type, "buffer": buffer.getvalue()})

    expect_prediction(page, "7")
    expect(page.get_by_test_id("confidence")).to_contain_text(name)


def test_dropping_an_image_shows_the_prediction(open_page: Callable[..., Page]):
    page = open_page("/")
    encoded = base64.b64encode(digit_png("4")).decode()
    page.evaluate(
        """encoded => {
            const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "four.png", { type: "image/png" }));
            const target = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {
                    bubbles: true, cancelable: true, dataTransfer: transfer,
                }));
            }
        }""",
        encoded,
    )

    expect_prediction(page, "4")
    expect(page.get_by_test_id("confidence")).to_contain_text("four.png")
    expect(page.locator("body")).not_to_have_class(re.compile("dragging"))


def test_a_blank_canvas_shows_the_apis_message(
    open_page: Callable[..., Page], live_server, browser_log: BrowserLog
):
    blank = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(blank, format="PNG")
    answer = httpx.post(
        live_server.url + "/predict", files={"file": ("blank.png", blank.getvalue())}, timeout=10
    )
    assert answer.status_code == 422
    browser_log.expect_console_error(r"status of 422")
    page = open_page("/")

    page.get_by_role("button", name="Read drawing").focus()  # by keyboard
    page.keyboard.press("Enter")

    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_have_text(answer.json()["detail"])
    expect(page.get_by_test_id("prediction")).to_have_text("?")
    expect(page.get_by_test_id("preview")).to_be_hidden()


def test_a_file_that_is_not_an_image_shows_the_apis_message(
    open_page: Callable[..., Page], browser_log: BrowserLog
):
    browser_log.expect_console_error(r"status of 415")
    page = open_page("/")
    file = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"}

    page.get_by_label("Choose an image file").set_input_files(file)

    expect(page.get_by_role("alert")).to_contain_text("not an image")
    expect(page.locator("body")).to_have_attribute("data-state", "error")


def test_clear_empties_the_canvas_and_the_answer(open_page: Callable[..., Page]):
    page = open_page("/")
    draw(page, STROKES["1"])
    expect(page.get_by_test_id("prediction")).not_to_have_text("?")

    page.get_by_role("button", name="Clear").click()

    expect(page.get_by_test_id("prediction")).to_have_text("?")
    expect(page.get_by_test_id("preview")).to_be_hidden()
    expect(page.get_by_role("alert")).to_be_hidden()
    all_white = page.get_by_test_id("canvas").evaluate(
        """c => c.getContext("2d").getImageData(0, 0, c.width, c.height).data
                .every(v => v === 255)"""
    )
    assert all_white


def test_a_phone_can_draw_with_a_finger(open_page: Callable[..., Page]):
    page = open_page(
        "/",
        viewport={"width": 375, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scrolling"
    canvas = page.get_by_test_id("canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert box["width"] >= 250, "big enough to draw on"
    for name in ("Clear", "Read drawing"):
        button = page.get_by_role("button", name=name).bounding_box()
        assert button is not None and button["height"] >= 44, "thumb-sized buttons"

    cdp = page.context.new_cdp_session(page)
    x = box["x"] + box["width"] / 2
    ys = [box["y"] + box["height"] * (0.15 + 0.7 * i / 12) for i in range(13)]
    with page.expect_response(lambda r: "/predict" in r.url):
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]},
        )
        for y in ys[1:]:
            cdp.send(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
            )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    expect_prediction(page, "1")
    expect(page.get_by_test_id("prediction")).to_be_in_viewport()  # no scrolling to see it
    assert page.evaluate("window.scrollX") == 0
