"""The page's number mode, in headless Chromium: a wide pad, POST /read, the number,
each digit's box over the image read, each digit's probabilities."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.app.handwriting import draw_number
from tests.browser.test_page import STROKES

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserLog

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


def number_mode(page: Page) -> None:
    page.get_by_label("A number").check()
    expect(page.locator("body")).to_have_attribute("data-mode", "number")
    expect(page.get_by_role("img", name="Drawing area for a number")).to_be_visible()


def upload_png(page: Page, image, name: str) -> None:
    """Choose ``image`` as a PNG file named ``name`` in the page's file input."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    file = {"name": name, "mimeType": "image/png", "buffer": buffer.getvalue()}
    page.get_by_label("Choose an image file").set_input_files(file)


def draw_in_thirds(page: Page, digits: str) -> None:
    """Each digit in its own third of the wide pad; /read is called once per stroke."""
    box = page.get_by_test_id("canvas").bounding_box()
    assert box is not None and box["width"] > 2.5 * box["height"], "a wide pad"
    third = box["width"] / len(digits)
    for index, digit in enumerate(digits):
        for stroke in STROKES[digit]:
            points = [
                (box["x"] + (index + 0.15 + 0.7 * x) * third, box["y"] + y * box["height"])
                for x, y in stroke
            ]
            with page.expect_response(lambda r: "/read" in r.url) as answer:
                page.mouse.move(*points[0])
                page.mouse.down()
                for point in points[1:]:
                    page.mouse.move(*point, steps=12)
                page.mouse.up()
            assert answer.value.ok, answer.value.text()
            assert "reject=false" in answer.value.url  # a drawing is never refused mid-way
    expect(page.locator("body")).to_have_attribute("data-state", "done")


def expect_number(page: Page, number: str) -> None:
    expect(page.get_by_test_id("number-error")).to_be_hidden()
    expect(page.get_by_test_id("number")).to_have_text(number)
    confident = re.compile(r"^\d+\.\d% confident")
    expect(page.get_by_test_id("number-confidence")).to_have_text(confident)
    digits = page.get_by_test_id("digits").get_by_role("listitem")
    expect(digits).to_have_count(len(number))
    for index, digit in enumerate(number):
        item = digits.nth(index)
        expect(item).to_have_attribute("data-digit", digit)
        expect(item.locator(".mini span")).to_have_count(10)  # all ten probabilities
        expect(item.locator(".mini span.top")).to_have_count(1)
    expect(page.get_by_test_id("boxes")).to_have_attribute("data-boxes", str(len(number)))


def test_drawing_a_number_shows_it_digit_by_digit(open_page: Callable[..., Page]):
    page = open_page("/", viewport={"width": 1000, "height": 900})
    number_mode(page)
    expect(page.get_by_test_id("prediction")).to_be_hidden()  # the one-digit answer
    draw_in_thirds(page, "174")
    expect_number(page, "174")
    expect(page.get_by_test_id("number-confidence")).to_contain_text("your drawing")


def test_uploading_a_number(open_page: Callable[..., Page]):
    page = open_page("/")
    number_mode(page)
    with page.expect_request(lambda request: "/read" in request.url) as sent:
        upload_png(page, draw_number("2025")[0], "year.png")
    assert "reject=false" not in sent.value.url  # an upload is refused as any client's
    expect_number(page, "2025")
    expect(page.get_by_test_id("number-confidence")).to_contain_text("year.png")


@pytest.mark.parametrize("width", [1100, 700, 390])
def test_the_image_read_and_its_caption_stay_in_their_panel(
    open_page: Callable[..., Page], width: int
):
    """The image read is as wide as the panel allows and its caption under it, inside
    the panel, on a wide screen, a narrow one and a phone."""
    page = open_page("/", viewport={"width": width, "height": 900})
    number_mode(page)
    upload_png(page, draw_number("307125")[0], "long.png")
    expect_number(page, "307125")
    panel = page.locator("#number-result").bounding_box()
    image = page.get_by_test_id("boxes").bounding_box()
    caption = page.locator("#number-result figcaption").bounding_box()
    assert panel and image and caption
    for box in (image, caption):
        assert panel["x"] <= box["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"]
    assert caption["y"] >= image["y"] + image["height"]  # under it, not squeezed beside it
    number = page.get_by_test_id("number").bounding_box()
    assert number and number["height"] < 2 * 40  # one line of its 2.5rem digits, not broken


def test_a_decimal_point_is_named_apart(open_page: Callable[..., Page]):
    page = open_page("/")
    number_mode(page)
    upload_png(page, draw_number("275", point_after=1)[0], "price.png")
    expect_number(page, "275")
    expect(page.get_by_test_id("other")).to_have_text("Not digits, left out: point.")


def test_a_blank_pad_shows_the_apis_message(
    open_page: Callable[..., Page], browser_log: BrowserLog
):
    browser_log.expect_console_error(r"status of 422")
    page = open_page("/")
    number_mode(page)
    page.get_by_role("button", name="Read drawing").click()
    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("No digit found")
    expect(page.get_by_test_id("number")).to_have_text("?")


def test_back_to_one_digit(open_page: Callable[..., Page]):
    page = open_page("/")
    number_mode(page)
    page.get_by_label("One digit").check()
    expect(page.locator("body")).to_have_attribute("data-mode", "digit")
    expect(page.get_by_role("img", name="Drawing area for one digit")).to_be_visible()
    assert page.get_by_test_id("canvas").evaluate("c => c.width") == 280
    expect(page.get_by_test_id("number")).to_be_hidden()
    expect(page.get_by_test_id("prediction")).to_be_visible()
