"""The offline Swagger UI at /docs, in headless Chromium: it renders, and "Try it out" works."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.app.handwriting import draw_number

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

PREDICT = "#operations-predict-predict_predict_post"


def three_png() -> bytes:
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).line(
        [(60, 40), (140, 40), (90, 100), (140, 150), (60, 165)], fill=0, width=16, joint="curve"
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_docs_list_the_operations(open_page: Callable[..., Page]):
    page = open_page("/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("digits")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible()
    listed = set(paths.all_inner_texts())
    assert {"/predict", "/predict/batch", "/model", "/health/live", "/health/ready"} <= {
        path.replace("\u200b", "") for path in listed
    }


def test_try_it_out_on_predict_returns_a_prediction(open_page: Callable[..., Page]):
    page = open_page("/docs")
    operation = page.locator(PREDICT)

    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[type=file]").set_input_files(
        {"name": "three.png", "mimeType": "image/png", "buffer": three_png()}
    )
    with page.expect_response(re.compile(r"/predict(\?|$)")) as answer:
        operation.get_by_role("button", name="Execute").click()

    assert answer.value.status == 200, answer.value.text()
    live = operation.locator(".live-responses-table")
    expect(live.locator("tbody .response-col_status")).to_have_text("200")
    body = live.locator("tbody .response-col_description .highlight-code pre").first
    expect(body).to_contain_text('"digit"')
    shown = json.loads(body.inner_text())
    assert shown == answer.value.json()
    assert 0 <= shown["digit"] <= 9 and len(shown["probabilities"]) == 10


def test_try_it_out_on_read_returns_the_number(open_page: Callable[..., Page]):
    image, _ = draw_number("2025")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    page = open_page("/docs")
    operation = page.locator("#operations-read-read_read_post")

    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[type=file]").set_input_files(
        {"name": "year.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
    )
    with page.expect_response(re.compile(r"/read(\?|$)")) as answer:
        operation.get_by_role("button", name="Execute").click()

    assert answer.value.status == 200, answer.value.text()
    body = operation.locator(".live-responses-table tbody .response-col_description pre").first
    expect(body).to_contain_text('"number"')
    assert json.loads(body.inner_text())["number"] == "2025"
