"""POST /predict and /predict/batch over HTTP (TestClient)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.app.test_preprocessing import stroke_digit
from tests.conftest import png_bytes


def upload(content: bytes, name: str = "digit.png", content_type: str = "image/png") -> dict:
    return {"file": (name, content, content_type)}


@pytest.fixture(scope="module")
def seven() -> bytes:
    return png_bytes(stroke_digit())


def test_prediction_body(client: TestClient, seven: bytes) -> None:
    response = client.post("/predict", files=upload(seven))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"digit", "confidence", "probabilities", "digit_score", "model_version"}
    probabilities = body["probabilities"]
    assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 1e-4
    assert body["digit"] == int(np.argmax(probabilities)) == 7
    assert body["confidence"] == probabilities[body["digit"]]
    assert body["model_version"] == client.get("/model").json()["version"]


def test_include_input_returns_what_the_network_saw(client: TestClient, seven: bytes) -> None:
    body = client.post("/predict", files=upload(seven), params={"include_input": "true"}).json()
    image = Image.open(io.BytesIO(base64.b64decode(body["input_png"])))
    assert image.format == "PNG" and image.size == (28, 28) and image.mode == "L"
    pixels = np.asarray(image)
    assert pixels.max() == 255 and pixels[0].max() == 0  # white ink on black, margins empty


def test_content_type_and_filename_do_not_matter(client: TestClient, seven: bytes) -> None:
    response = client.post("/predict", files=upload(seven, "photo.jpg", "text/plain"))
    assert response.status_code == 200 and response.json()["digit"] == 7


@pytest.mark.parametrize(
    ("content", "status", "detail"),
    [
        (b"", 400, "empty"),
        (b"GIF89a but not really", 415, "not an image"),
        (b"just some text", 415, "not an image"),
        (png_bytes(Image.new("L", (64, 64), 255)), 422, "No digit found"),
        (png_bytes(Image.new("1", (12000, 12000))), 413, "limit is 16,000,000"),
    ],
)
def test_client_errors(client: TestClient, content: bytes, status: int, detail: str) -> None:
    response = client.post("/predict", files=upload(content))
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert client.get("/health/ready").status_code == 200


def test_missing_field_is_422(client: TestClient, seven: bytes) -> None:
    response = client.post("/predict", files={"image": ("a.png", seven, "image/png")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


@pytest.mark.parametrize(("path", "field"), [("/predict", "file"), ("/read", "file"),
                                             ("/predict/batch", "files")])  # fmt: skip
def test_text_where_the_file_belongs_is_422_saying_so(
    client: TestClient, path: str, field: str
) -> None:
    """`curl -F file=digit.png`, the @ forgotten, sends the name as text: not FastAPI's
    list of problems, nor the text echoed back."""
    response = client.post(path, data={field: "digit.png" * 1000})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(f"The field `{field}` holds text, not a file")
    assert f"curl -F {field}=@digit.png" in detail and len(detail) < 200


@pytest.mark.parametrize(("filename", "status"), [(b"", 422), (b"a.png", 400)])
def test_an_empty_part_gets_one_answer_on_every_path(
    client: TestClient, filename: bytes, status: int
) -> None:
    """A browser's form with no file chosen sends an empty part named file, its filename
    empty: no file (422), where an empty file named a.png is 400; /predict's short cut
    answered 400 to both."""
    body = (
        b'--X\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"'
        b"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--X--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=X"}
    for path in ("/predict", "/predict?reject=false", "/read"):
        assert client.post(path, content=body, headers=headers).status_code == status, path


@pytest.mark.parametrize("path", ["/predict", "/read"])
def test_several_files_where_one_is_read_are_422(
    client: TestClient, seven: bytes, path: str
) -> None:
    """Not the last file read and the others dropped: the client hears it."""
    two = [("file", ("a.png", seven, "image/png")), ("file", ("b.png", seven, "image/png"))]
    response = client.post(path, files=two)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "2 files were sent as the field `file`" in detail and "/predict/batch" in detail
    assert client.post(path, files=two[:1]).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/json", b'{"file": "iVBORw0KGgo="}'),
        ("image/png", png_bytes(stroke_digit())),  # the bare image, not a form
        (None, b""),
    ],
    ids=["json", "bare image", "no body"],
)
def test_a_body_that_is_not_multipart_is_422(
    client: TestClient, path: str, content_type: str | None, content: bytes
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "file" if path == "/predict" else "files"]


MALFORMED = [
    ("boundary=xyz", b"no delimiter at all"),
    ("boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="file"\r\nbroken header'),
    ("", b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx'),
]


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize(
    ("parameters", "content"), MALFORMED, ids=["no delimiter", "bad header", "no boundary"]
)
def test_a_malformed_multipart_body_is_400(
    client: TestClient, path: str, parameters: str, content: bytes
) -> None:
    content_type = "; ".join(filter(None, ["multipart/form-data", parameters]))
    response = client.post(path, content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "multipart" in response.json()["detail"]
    assert client.get("/health/ready").status_code == 200


def test_declared_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/predict", files=upload(bytes(6 * 1024 * 1024)))
    assert response.status_code == 413
    assert "MAX_UPLOAD_BYTES" in response.json()["detail"]


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    boundary = "digitsboundary"

    def chunks():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        for _ in range(12):
            yield bytes(512 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/predict",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert "MAX_UPLOAD_BYTES" in response.json()["detail"]


def test_batch_keeps_order_and_isolates_bad_files(client: TestClient, seven: bytes) -> None:
    one = png_bytes(stroke_digit_one())
    files = [
        ("files", ("seven.png", seven, "image/png")),
        ("files", ("broken.png", b"not an image", "image/png")),
        ("files", ("one.png", one, "image/png")),
        ("files", ("blank.png", png_bytes(Image.new("L", (40, 40), 0)), "image/png")),
    ]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200
    items = response.json()["predictions"]
    assert [item["filename"] for item in items] == [
        "seven.png",
        "broken.png",
        "one.png",
        "blank.png",
    ]
    assert items[0]["prediction"]["digit"] == 7
    assert items[1]["error"]["status"] == 415 and "prediction" not in items[1]
    assert items[2]["prediction"]["digit"] == 1
    assert items[3]["error"]["status"] == 422
    single = client.post("/predict", files=upload(seven)).json()
    np.testing.assert_allclose(
        items[0]["prediction"]["probabilities"], single["probabilities"], atol=1e-6
    )


def test_batch_limit(client: TestClient, settings, seven: bytes) -> None:
    names = [f"{index}.png" for index in range(settings.max_batch_files + 1)]
    files = [("files", (name, seven, "image/png")) for name in names]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 413
    limit = settings.max_batch_files
    assert response.json()["detail"] == f"{limit + 1} files; at most {limit} per batch."

    response = client.post("/predict/batch", files=files[:limit])  # exactly the limit
    assert response.status_code == 200
    items = response.json()["predictions"]
    assert [item["filename"] for item in items] == names[:limit]
    assert [item["prediction"]["digit"] for item in items] == [7] * limit


def stroke_digit_one() -> Image.Image:
    image = Image.new("L", (200, 200), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(image).line([(105, 30), (95, 170)], fill=0, width=16)
    return image
