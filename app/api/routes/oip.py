"""The Open Inference Protocol (KServe v2), REST, beside the service's own API.

Stock clients (tritonclient, KServe's and MLServer's) read digits through it. One
model, named as its card names it (``digitnet``), takes one of two inputs:

- ``input``: FP32 ``[n, 28, 28, 1]`` in [0, 1], the network's own input;
- ``image``: BYTES ``[n]``, image files base64-encoded as MLServer's base64 codec
  carries them, each normalised as ``/predict`` normalises an upload;

and answers ``probabilities``: FP32 ``[n, 10]``. Errors are ``{"error": "..."}``:
unknown model 404, bad tensor 400, and for images the status and text ``/predict``
gives. The body size, pixel and batch limits are those of ``/predict/batch``.
tritonclient posts its JSON without a JSON content type; any content type is read
as JSON here. Triton's binary tensor extension is read too (what tritonclient sends
by default): with an ``Inference-Header-Content-Length`` header the body is that
much JSON, then the tensors' bytes (``binary_data_size`` in an input's parameters):
FP32 little-endian, BYTES as 4-byte little-endian lengths each followed by an
image file (raw, or base64 as in JSON). Answers are always JSON, which tritonclient
reads either way.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from app import __version__, observability, preprocessing
from app.api.deps import PredictorDep, SettingsDep
from app.api.errors import OIP_ROOT, error_content, status_for
from app.api.middleware import LENGTH_DIGITS, declared_length, replayed
from app.api.oip_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    OipError,
    RequestInput,
    ResponseOutput,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
)
from app.calibration import NUM_DIGITS
from app.inference import INPUT_SHAPE, DigitClassifier

OUTPUT = TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, NUM_DIGITS])
INPUTS = {
    "input": TensorMetadata(name="input", datatype="FP32", shape=[-1, *INPUT_SHAPE]),
    "image": TensorMetadata(
        name="image", datatype="BYTES", shape=[-1], parameters={"content_type": "base64"}
    ),
}
ONE_INPUT = "one input: 'input' (FP32 [n, 28, 28, 1]) or 'image' (BYTES [n], base64 files)"
JSON_LENGTH = "inference-header-content-length"  # Triton's binary tensor extension
BINARY = "digits.oip.binary"  # where the handler finds the bytes after the JSON


def _error(description: str) -> dict:
    return {"model": OipError, "description": description}


MODEL_ERRORS = {
    404: _error("No model of that name (or version) here."),
    503: _error("The model is not loaded yet."),
}
INFER_ERRORS = {
    400: _error("The request is not a valid inference request, or a tensor is bad."),
    408: _error("The body did not all arrive within BODY_TIMEOUT_S."),
    413: _error(
        "The body is over MAX_UPLOAD_BYTES, an image over MAX_PIXELS, or the batch "
        "over MAX_BATCH_FILES."
    ),
    415: _error("An image is not in a format the service reads, or is truncated."),
    422: _error("No digit in an image."),
    **MODEL_ERRORS,
}
NOT_READY = {503: {"model": ServerReady, "description": "Not ready (yet)."}}


def oip_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_content(OIP_ROOT, message), status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for problem in error.errors():
        if problem.get("type") == "json_invalid":
            return "The body is not JSON."
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        problems.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
    return "Not a valid inference request: " + "; ".join(problems)


async def _json_part(request: Request) -> Request:
    """The request as FastAPI should parse it: JSON, whatever the content type says,
    and with the binary extension only the JSON part, the rest kept in the scope."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    scope = {**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}
    declared = request.headers.get(JSON_LENGTH)
    if declared is None:
        return Request(scope, request.receive)
    try:
        body = await request.body()  # the size and time limits apply as ever
    except ClientDisconnect:  # no one to answer: counted as the client's doing
        raise HTTPException(400, "The client disconnected before the body arrived.") from None
    length = declared_length(declared)
    if length is None or length > len(body):
        shown = f"of {len(declared)} characters"
        if len(declared) <= LENGTH_DIGITS:
            shown = repr(declared)
        raise HTTPException(
            400, f"Inference-Header-Content-Length {shown} does not fit the {len(body)}-byte body."
        )
    scope[BINARY] = body[length:]
    json_part = {"type": "http.request", "body": body[:length], "more_body": False}
    return Request(scope, replayed([json_part], request.receive))


class OipRoute(APIRoute):
    """Answers a bad request and an unreadable image the protocol's way (an HTTPException:
    the app's handler does), and reads the body as JSON whatever it says."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oip_handler(request: Request) -> Response:
            try:
                if request.method == "POST":
                    request = await _json_part(request)
                return await handler(request)
            except RequestValidationError as error:
                return oip_error(400, _validation_message(error))
            # An HTTPException (FastAPI's own body errors among them) goes on to the app's
            # handler, which answers in the protocol's shape on its paths (app.api.errors).
            except preprocessing.PreprocessingError as error:
                return oip_error(status_for(error), str(error))

        return oip_handler


router = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=OipRoute)


async def served_model(
    model_name: str, predictor: PredictorDep, model_version: str | None = None
) -> DigitClassifier:
    """The classifier, if the path names it (and, if given, its version)."""
    classifier = predictor.classifier
    if model_name != classifier.name:
        raise HTTPException(
            404, f"Unknown model {model_name!r}; this server has {classifier.name!r}."
        )
    if model_version is not None and model_version != classifier.version:
        raise HTTPException(
            404,
            f"Unknown version {model_version!r} of {model_name!r}; "
            f"this server has {classifier.version!r}.",
        )
    return classifier


ModelDep = Annotated[DigitClassifier, Depends(served_model)]
MODEL = "/models/{model_name}"
VERSION = "/models/{model_name}/versions/{model_version}"


@router.get("", summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="digits", version=__version__, extensions=[])


@router.get("/health/live", summary="The server is live")
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@router.get("/health/ready", summary="The server is ready", responses=NOT_READY)
async def server_ready(request: Request) -> ServerReady:
    """503 with ``{"ready": false}`` until the model is loaded, and while shutting down."""
    if getattr(request.app.state, "predictor", None) is None:
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})
    return ServerReady(ready=True)


@router.get(f"{MODEL}/ready", summary="The model is ready", responses=MODEL_ERRORS)
@router.get(f"{VERSION}/ready", summary="The model version is ready", responses=MODEL_ERRORS)
async def model_ready(classifier: ModelDep) -> ModelReady:
    return ModelReady(name=classifier.name, ready=True)


@router.get(
    MODEL, summary="Model metadata", responses=MODEL_ERRORS, response_model_exclude_none=True
)
@router.get(
    VERSION,
    summary="Model version metadata",
    responses=MODEL_ERRORS,
    response_model_exclude_none=True,
)
async def model_metadata(classifier: ModelDep) -> ModelMetadata:
    """Inputs (one per request): ``input`` FP32 [-1, 28, 28, 1], the network's own
    input in [0, 1]; ``image`` BYTES [-1], base64-encoded image files read as
    ``/predict`` reads them. Output: ``probabilities`` FP32 [-1, 10]."""
    return ModelMetadata(
        name=classifier.name,
        versions=[classifier.version],
        platform=classifier.engine_name,
        inputs=list(INPUTS.values()),
        outputs=[OUTPUT],
    )


def _bad(tensor: RequestInput, problem: str) -> HTTPException:
    return HTTPException(400, f"Input {tensor.name!r}: {problem}")


def _batch_size(tensor: RequestInput, max_batch: int) -> int:
    expected = INPUTS[tensor.name]
    if tensor.datatype != expected.datatype:
        raise _bad(tensor, f"datatype {tensor.datatype}; expected {expected.datatype}.")
    shapes = [expected.shape[1:]] if tensor.name == "input" else [[], [1]]
    if not tensor.shape or tensor.shape[1:] not in shapes or tensor.shape[0] < 1:
        wanted = " or ".join(str([-1, *shape]) for shape in shapes)
        raise _bad(tensor, f"shape {tensor.shape}; expected {wanted} (-1: 1 or more).")
    size = tensor.shape[0]
    if size > max_batch:
        raise HTTPException(
            413, f"{size} inputs; at most {max_batch} per request (MAX_BATCH_FILES)."
        )
    return size


def _binary_data(tensor: RequestInput, binary: bytes | None) -> bytes | None:
    """The tensor's bytes, if it came by the binary extension (one input a request)."""
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        return None
    if binary is None:
        raise _bad(tensor, "binary_data_size without an Inference-Header-Content-Length header.")
    if not isinstance(size, int) or isinstance(size, bool):
        raise _bad(tensor, f"binary_data_size {size!r}; a whole number of bytes.")
    if size != len(binary):
        raise _bad(tensor, f"binary_data_size {size}, but {len(binary)} bytes follow the JSON.")
    return binary


def _network_inputs(tensor: RequestInput, binary: bytes | None) -> np.ndarray:
    data = _binary_data(tensor, binary)
    try:
        values = np.asarray(tensor.data) if data is None else np.frombuffer(data, "<f4")
    except ValueError:  # ragged nesting, or bytes that are not whole float32s
        raise _bad(tensor, "data is not a regular array of FP32.") from None
    if values.dtype.kind not in "iuf":
        raise _bad(tensor, "data must be numbers.")
    if values.size != math.prod(tensor.shape):
        raise _bad(tensor, f"{values.size} values for shape {tensor.shape}.")
    batch = values.astype(np.float32).reshape(tensor.shape)
    if not (np.isfinite(batch).all() and batch.min() >= 0.0 and batch.max() <= 1.0):
        raise _bad(tensor, "values must be in [0, 1] (white ink on black, as MNIST).")
    return batch


def _byte_elements(tensor: RequestInput, data: bytes) -> list[bytes]:
    """Triton's serialised BYTES: each element its 4-byte little-endian length, then it."""
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise _bad(tensor, "binary data ends inside an element's length.")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise _bad(tensor, f"binary element {len(elements)} is cut short.")
        elements.append(data[offset : offset + length])
        offset += length
    return elements


def _as_file(element: bytes) -> bytes:
    """A binary element is the file itself, or the file in base64 as in JSON (an image
    file's own bytes are never all base64: its signature is not)."""
    try:
        return base64.b64decode(element, validate=True)
    except (binascii.Error, ValueError):
        return element


def _image_files(tensor: RequestInput, binary: bytes | None) -> list[bytes]:
    content_type = (tensor.parameters or {}).get("content_type", "base64")
    if content_type != "base64":
        raise _bad(tensor, f"content_type {content_type!r}; image files come base64-encoded.")
    data = _binary_data(tensor, binary)
    if data is not None:
        files = [_as_file(element) for element in _byte_elements(tensor, data)]
        if len(files) != tensor.shape[0]:
            raise _bad(tensor, f"{len(files)} binary elements for shape {tensor.shape}.")
        return files
    # Shape [n, 1] may come nested: [["..."], ["..."]].
    elements = [e[0] if isinstance(e, list) and len(e) == 1 else e for e in tensor.data]
    if len(elements) != tensor.shape[0] or not all(isinstance(e, str) for e in elements):
        raise _bad(tensor, f"expected {tensor.shape[0]} base64 strings.")
    files = []
    for index, element in enumerate(elements):
        try:
            files.append(base64.b64decode(element, validate=True))
        except (binascii.Error, ValueError):
            raise _bad(tensor, f"element {index} is not base64.") from None
    return files


@router.post(
    f"{MODEL}/infer",
    summary="Read digits",
    responses=INFER_ERRORS,
    response_model_exclude_none=True,
)
@router.post(
    f"{VERSION}/infer",
    summary="Read digits with this version",
    responses=INFER_ERRORS,
    response_model_exclude_none=True,
)
async def infer(
    request: Request,
    body: InferenceRequest,
    classifier: ModelDep,
    predictor: PredictorDep,
    settings: SettingsDep,
) -> InferenceResponse:
    """One input, ``input`` (FP32 [n, 28, 28, 1]) or ``image`` (BYTES [n], base64
    image files), up to MAX_BATCH_FILES of them; ``probabilities`` FP32 [n, 10] back."""
    if len(body.inputs) != 1 or body.inputs[0].name not in INPUTS:
        names = [tensor.name for tensor in body.inputs]
        raise HTTPException(400, f"Inputs {names}; this model takes {ONE_INPUT}.")
    for wanted in body.outputs or []:
        if wanted.name != OUTPUT.name:
            raise HTTPException(
                400, f"Unknown output {wanted.name!r}; this model answers {OUTPUT.name!r}."
            )
    tensor, binary = body.inputs[0], request.scope.get(BINARY)
    size = _batch_size(tensor, settings.max_batch_files)
    if tensor.name == "input":
        probabilities = await predictor.infer(_network_inputs(tensor, binary))
    else:  # read as /predict/batch reads them, none refused as not a digit
        results = await predictor.predict_many(_image_files(tensor, binary), reject=False)
        for index, result in enumerate(results):
            if isinstance(result, preprocessing.PreprocessingError):
                raise HTTPException(status_for(result), f"Image {index}: {result}")
        probabilities = np.stack([result.probabilities for result in results])
    observability.annotate(
        request.scope, inputs=size, digits=[int(d) for d in probabilities.argmax(axis=1)]
    )
    output = ResponseOutput(
        name=OUTPUT.name,
        datatype=OUTPUT.datatype,
        shape=list(probabilities.shape),
        data=probabilities.ravel().tolist(),
    )
    return InferenceResponse(
        model_name=classifier.name, model_version=classifier.version, id=body.id, outputs=[output]
    )
