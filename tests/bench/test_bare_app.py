"""The bench's bare server does the service's own work: its answers are the service's."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.inputs import drawn_digit, photo
from tests.conftest import png_bytes

UPLOADS = {
    "digit png": ("7.png", png_bytes(drawn_digit()), "image/png"),
    "photo jpeg": ("7.jpg", png_bytes(photo(drawn_digit()), "JPEG", quality=90), "image/jpeg"),
    "blank png": ("blank.png", png_bytes(np.full((28, 28), 255, np.uint8)), "image/png"),
    "random bytes": ("x.png", bytes(range(256)) * 8, "image/png"),
    "empty file": ("empty.png", b"", "image/png"),
}


@pytest.fixture(scope="module")
def bare(model_path):
    from bench import bare_app  # loads the shipped model, as `uvicorn bench.bare_app:app` does

    return bare_app.app


def post_to(app, **request) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
            return await client.post("/predict", **request)

    return asyncio.run(send())


@pytest.mark.parametrize("name", UPLOADS)
def test_bare_answers_as_the_service_does(name: str, bare, client: TestClient) -> None:
    files = {"file": UPLOADS[name]}
    service = client.post("/predict", files=files)
    answer = post_to(bare, files=files)

    assert answer.status_code == service.status_code
    if service.status_code == 200:
        assert answer.json()["digit"] == service.json()["digit"]
        assert answer.json()["probabilities"] == service.json()["probabilities"]
    else:
        assert answer.json()["detail"] == service.json()["detail"]


def test_bare_refuses_what_it_does_not_read(bare) -> None:
    two_files = [("file", UPLOADS["digit png"]), ("file", UPLOADS["digit png"])]
    assert post_to(bare, files=two_files).status_code == 400
    assert post_to(bare, content=b"not a form").status_code == 400
