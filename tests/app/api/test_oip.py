"""The Open Inference Protocol (KServe v2, REST), through the stock client.

tritonclient's InferenceServerClient talks to a real server on 127.0.0.1, as a
team running model servers would: health, metadata, inference by tensor and by
image file. The protocol's errors are checked in-process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from PIL import Image
from tritonclient.utils import InferenceServerException

from app.api import errors
from model.evaluate import as_network_input
from tests.app.test_handwriting import heavy_stretched_one
from tests.conftest import LiveServer, gone_mid_body, http_scope, png_bytes

MODEL = "digitnet"
INFER = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module")
def triton_client(live_server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{live_server.port}", network_timeout=30)
    yield client
    client.close()


def image_files(images: np.ndarray) -> list[bytes]:
    """MNIST digits as people upload them: dark ink on light paper, larger, as PNG."""
    return [png_bytes(Image.fromarray(255 - image).resize((112, 112))) for image in images]


def image_input(files: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(files)], "BYTES")
    encoded = np.array([base64.b64encode(file) for file in files], dtype=np.object_)
    tensor.set_data_from_numpy(encoded, binary_data=False)
    return tensor


def probabilities(result: triton.InferResult) -> np.ndarray:
    values = result.as_numpy("probabilities")
    assert values is not None and values.dtype == np.float32
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)
    return values


def test_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert not triton_client.is_model_ready("resnet")
    server = triton_client.get_server_metadata()
    assert server["name"] == "digits"
    metadata = triton_client.get_model_metadata(MODEL)
    assert metadata["name"] == MODEL
    version = metadata["versions"][0]
    assert triton_client.is_model_ready(MODEL, model_version=version)
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert (inputs["input"]["datatype"], inputs["input"]["shape"]) == ("FP32", [-1, 28, 28, 1])
    assert (inputs["image"]["datatype"], inputs["image"]["shape"]) == ("BYTES", [-1])
    assert inputs["image"]["parameters"] == {"content_type": "base64"}
    (output,) = metadata["outputs"]
    assert output == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}


def test_infer_a_batch_of_64_tensors(
    triton_client: triton.InferenceServerClient, training_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = training_digits[0][:64], training_digits[1][:64]
    tensor = triton.InferInput("input", [64, 28, 28, 1], "FP32")
    tensor.set_data_from_numpy(as_network_input(images), binary_data=False)
    wanted = [triton.InferRequestedOutput("probabilities", binary_data=False)]
    result = triton_client.infer(MODEL, [tensor], outputs=wanted, request_id="batch-64")
    assert result.get_response()["id"] == "batch-64"
    assert result.get_response()["model_name"] == MODEL
    read = probabilities(result)
    assert read.shape == (64, 10)
    assert (read.argmax(axis=1) == labels).mean() >= 0.95


def test_infer_8_image_files_as_predict_reads_them(
    triton_client: triton.InferenceServerClient,
    live_server: LiveServer,
    training_digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = training_digits[0][64:72], training_digits[1][64:72]
    files = image_files(images)
    result = triton_client.infer(MODEL, [image_input(files)])  # outputs: all, by default
    read = probabilities(result)
    assert read.shape == (8, 10)
    assert (read.argmax(axis=1) == labels).sum() >= 7
    batch = httpx.post(
        f"{live_server.url}/predict/batch",
        files=[("files", (f"{n}.png", file, "image/png")) for n, file in enumerate(files)],
        timeout=30,
    ).json()["predictions"]
    expected = np.array([item["prediction"]["probabilities"] for item in batch])
    np.testing.assert_allclose(read, expected, atol=1e-6)


def test_binary_tensors_as_tritonclient_sends_them_by_default(
    triton_client: triton.InferenceServerClient, training_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = training_digits[0][72:80], training_digits[1][72:80]
    tensor = triton.InferInput("input", [8, 28, 28, 1], "FP32")
    tensor.set_data_from_numpy(as_network_input(images))  # binary_data=True
    by_tensor = probabilities(triton_client.infer(MODEL, [tensor]))
    assert (by_tensor.argmax(axis=1) == labels).sum() >= 7
    files = image_files(images)
    for encode in (lambda file: file, base64.b64encode):  # the files, or base64 as in JSON
        image = triton.InferInput("image", [len(files)], "BYTES")
        image.set_data_from_numpy(np.array([encode(file) for file in files], dtype=np.object_))
        by_image = probabilities(triton_client.infer(MODEL, [image]))
        json_image = probabilities(triton_client.infer(MODEL, [image_input(files)]))
        np.testing.assert_array_equal(by_image, json_image)


def test_errors_reach_the_client_with_status_and_message(
    triton_client: triton.InferenceServerClient,
) -> None:
    tensor = triton.InferInput("input", [1, 28, 28, 1], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 28, 28, 1), np.float32), binary_data=False)
    with pytest.raises(InferenceServerException) as unknown:
        triton_client.infer("resnet", [tensor])
    assert unknown.value.status() == "404"
    assert "Unknown model 'resnet'" in unknown.value.message()
    with pytest.raises(InferenceServerException) as unreadable:
        triton_client.infer(MODEL, [image_input([b"not an image"])])
    assert unreadable.value.status() == "415"


# In-process: the protocol's errors, and what stock clients send.


def infer_json(client: TestClient, body: object, **headers: str) -> httpx.Response:
    return client.post(INFER, content=json.dumps(body).encode(), headers=headers)


def one_input(name: str, shape: list[int], datatype: str, data: list, **extra) -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **extra}


ZEROS = [0.0] * 784


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain"])
def test_any_content_type_is_read_as_json(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = one_input("input", [1, 28, 28, 1], "FP32", ZEROS, id="x-1")
    response = infer_json(client, body, **headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "x-1"
    (output,) = response.json()["outputs"]
    assert output["shape"] == [1, 10] and len(output["data"]) == 10


def test_images_in_shape_n_by_1_flat_or_nested(client: TestClient) -> None:
    one = np.full((28, 28), 255, np.uint8)
    one[4:24, 12:16] = 0
    encoded = base64.b64encode(png_bytes(one)).decode()
    for data in ([encoded, encoded], [[encoded], [encoded]]):
        response = infer_json(client, one_input("image", [2, 1], "BYTES", data))
        assert response.status_code == 200, response.text
        read = np.array(response.json()["outputs"][0]["data"]).reshape(2, 10)
        assert list(read.argmax(axis=1)) == [1, 1]


def test_an_image_is_read_as_predict_reads_it_either_way_round(client: TestClient) -> None:
    """A heavy 1 stretched to fill its box leaves its paper in doubt: read both ways
    round, as /predict reads it (``preprocessing.readings``)."""
    upload = png_bytes((255 * (1 - heavy_stretched_one(0.2))).astype(np.uint8))
    data = [base64.b64encode(upload).decode()]
    response = infer_json(client, one_input("image", [1], "BYTES", data))
    assert response.status_code == 200, response.text
    predicted = client.post("/predict", files={"file": ("1.png", upload, "image/png")}).json()
    read = response.json()["outputs"][0]["data"]
    np.testing.assert_allclose(read, predicted["probabilities"], atol=1e-6)
    assert int(np.argmax(read)) == predicted["digit"] == 1


def test_nested_data_is_read_in_row_major_order(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    batch = rng.random((2, 28, 28, 1), dtype=np.float32)
    flat = infer_json(client, one_input("input", [2, 28, 28, 1], "FP32", batch.ravel().tolist()))
    nested = infer_json(client, one_input("input", [2, 28, 28, 1], "FP32", batch.tolist()))
    assert flat.json()["outputs"] == nested.json()["outputs"]
    swapped = infer_json(client, one_input("input", [2, 28, 28, 1], "FP32", batch[::-1].tolist()))
    first, second = np.split(np.array(flat.json()["outputs"][0]["data"]), 2)
    np.testing.assert_array_equal(np.split(np.array(swapped.json()["outputs"][0]["data"]), 2),
                                  [second, first])  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Not a valid inference request"),
        ({"inputs": []}, "Not a valid inference request"),
        (one_input("pixels", [1, 784], "FP32", ZEROS), "this model takes one input"),
        (one_input("input", [1, 28, 28, 1], "FP64", ZEROS), "datatype FP64; expected FP32"),
        (one_input("input", [1, 784], "FP32", ZEROS), "shape [1, 784]; expected [-1, 28, 28, 1]"),
        (one_input("input", [0, 28, 28, 1], "FP32", []), "shape [0, 28, 28, 1]"),
        (one_input("input", [1, 28, 28, 1], "FP32", ZEROS[1:]), "783 values for shape"),
        (one_input("input", [1, 28, 28, 1], "FP32", ["0"] * 784), "data must be numbers"),
        (one_input("input", [1, 28, 28, 1], "FP32", [[0.0], [0.0, 0.0]]), "not a regular array"),
        (one_input("input", [1, 28, 28, 1], "FP32", [2.0] * 784), "values must be in [0, 1]"),
        (one_input("image", [1], "BYTES", ["%%%"]), "element 0 is not base64"),
        (one_input("image", [2], "BYTES", ["AA=="]), "expected 2 base64 strings"),
        (one_input("image", [1], "UINT8", ["AA=="]), "datatype UINT8; expected BYTES"),
        (
            one_input("input", [1, 28, 28, 1], "FP32", ZEROS, outputs=[{"name": "logits"}]),
            "Unknown output 'logits'",
        ),
        # Half a surrogate pair is valid JSON but no text: echoed, it was a 500.
        (one_input("input", [1, 28, 28, 1], "FP32", ZEROS, id="\ud800"), "id: Value error"),
        (one_input("input", [1, 28, 28, 1], "\udfff", ZEROS), "inputs.0.datatype: Value error"),
        (
            one_input("input", [1, 28, 28, 1], "FP32", ZEROS, parameters={"\ud800": 1}),
            "parameters: Value error, not Unicode text",
        ),
    ],
)
def test_a_bad_request_is_400_with_an_error(client: TestClient, body: dict, message: str) -> None:
    response = infer_json(client, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert client.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("header", "tail", "parameters", "message"),
    [
        ("99999", b"", {"binary_data_size": 4}, "does not fit"),
        ("x", b"", {"binary_data_size": 4}, "does not fit"),
        (None, b"", {"binary_data_size": 4}, "without an Inference-Header-Content-Length"),
        ("", b"\0" * 8, {"binary_data_size": 4}, "but 8 bytes follow"),
        ("", b"\0" * 6, {"binary_data_size": 6}, "not a regular array of FP32"),
        ("", b"\0" * 4, {"binary_data_size": "4"}, "binary_data_size '4'; a whole number"),
        ("", b"\0" * 4, {"binary_data_size": "\ud800"}, "not Unicode text"),
    ],
)
def test_bad_binary_tensors_are_400(
    client: TestClient, header: str | None, tail: bytes, parameters: dict, message: str
) -> None:
    body = one_input("input", [1, 28, 28, 1], "FP32", [])
    body["inputs"][0]["parameters"] = parameters
    head = json.dumps(body).encode()
    headers = (
        {} if header is None else {"Inference-Header-Content-Length": header or str(len(head))}
    )
    response = client.post(INFER, content=head + tail, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_an_error_echoing_a_long_request_is_cut_short(client: TestClient) -> None:
    inputs = [{"name": f"n{i}", "shape": [1], "datatype": "FP32", "data": [0]} for i in range(9999)]
    response = infer_json(client, {"inputs": inputs})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("Inputs ['n0', 'n1',") and len(error) == errors.MAX_ERROR_CHARS


def test_binary_byte_elements_must_be_whole(client: TestClient) -> None:
    body = one_input("image", [1], "BYTES", [])
    for tail, message in (
        (b"\x05\0", "inside an element's length"),
        (b"\x09\0\0\0abc", "cut short"),
    ):
        body["inputs"][0]["parameters"] = {"binary_data_size": len(tail)}
        head = json.dumps(body).encode()
        headers = {"Inference-Header-Content-Length": str(len(head))}
        response = client.post(INFER, content=head + tail, headers=headers)
        assert response.status_code == 400 and message in response.json()["error"]


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(INFER, content=b"{not json")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    response = client.post(
        INFER, content=b"\xff\xfe{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]


def test_unknown_model_or_version_is_404(client: TestClient) -> None:
    for path in ("/v2/models/resnet", "/v2/models/resnet/ready", f"/v2/models/{MODEL}/versions/0"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"].startswith("Unknown")
    assert infer_json(client, {"inputs": []}).status_code == 400  # the body is read first
    body = one_input("input", [1, 28, 28, 1], "FP32", ZEROS)
    assert client.post("/v2/models/resnet/infer", json=body).status_code == 404


def test_unreadable_images_get_predicts_status_and_text(client: TestClient) -> None:
    one = np.full((28, 28), 255, np.uint8)
    one[4:24, 12:16] = 0  # a dark "1" on white
    blank = png_bytes(np.full((40, 40), 255, np.uint8))
    for data, status in ((b"not an image", 415), (blank, 422), (b"", 400)):
        predict = client.post("/predict", files={"file": ("x.png", data, "image/png")})
        assert predict.status_code == status
        files = [base64.b64encode(file).decode() for file in (png_bytes(one), data)]
        response = infer_json(client, one_input("image", [2], "BYTES", files))
        assert response.status_code == status
        assert response.json() == {"error": f"Image 1: {predict.json()['detail']}"}


def test_limits_are_those_of_predict_batch(client: TestClient, settings) -> None:
    too_many = settings.max_batch_files + 1
    response = infer_json(
        client, one_input("input", [too_many, 28, 28, 1], "FP32", ZEROS * too_many)
    )
    assert response.status_code == 413
    assert f"at most {settings.max_batch_files}" in response.json()["error"]
    huge = Image.new("L", (5000, 4000), 255)  # 20 MP, over MAX_PIXELS, small as a PNG
    body = one_input("image", [1], "BYTES", [base64.b64encode(png_bytes(huge)).decode()])
    response = infer_json(client, body)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    oversized = b'{"inputs": [' + b" " * settings.max_upload_bytes + b"]}"
    response = client.post(INFER, content=oversized)
    assert response.status_code == 413
    assert "MAX_UPLOAD_BYTES" in response.json()["error"]


def test_an_inference_header_length_of_thousands_of_digits_is_400(client: TestClient) -> None:
    body = json.dumps(one_input("input", [1, 28, 28, 1], "FP32", [])).encode()
    for declared, error in (("1" * 4301, "does not fit"), ("0" * 4301 + "2", "not JSON")):
        headers = {"Inference-Header-Content-Length": declared}
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 400, response.text  # a 500 before: int() refused it
        assert error in response.json()["error"]
        assert len(response.json()["error"]) <= errors.MAX_ERROR_CHARS


def test_a_client_gone_mid_body_is_not_a_server_error(client: TestClient) -> None:
    """With the binary extension the JSON part is read first: a disconnect there was a
    500, logged with its traceback and counted as the server's."""
    headers = [(b"content-length", b"100"), (b"inference-header-content-length", b"50")]
    sent = gone_mid_body(client.app, http_scope("POST", INFER, headers), b'{"inputs": [')
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"].startswith("The client disconnected")


def test_routing_errors_on_the_protocols_paths_are_in_its_shape(client: TestClient) -> None:
    """A path or a method routing does not know is {"error": ...} under /v2 too, and
    stays {"detail": ...} elsewhere."""
    wrong = client.get(INFER)
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
    assert wrong.headers["allow"] == "POST"
    for path in ("/v2/models/digitnet/nothing", "/v2/nothing"):
        assert client.get(path).json() == {"error": "Not Found"}, path
    assert client.post("/v2").json() == {"error": "Method Not Allowed"}
    assert client.get("/nothing").json() == {"detail": "Not Found"}
