"""POST /predict and /predict/batch."""

from __future__ import annotations

import base64
import io
from typing import Annotated

import numpy as np
from fastapi import APIRouter, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.routing import iter_route_contexts
from PIL import Image
from starlette.formparsers import MultiPartParser
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import observability, preprocessing
from app.api import multipart
from app.api.deps import OneFile, PredictorDep, SettingsDep
from app.api.errors import NOT_READY, UPLOAD_ERRORS, preprocessing_error_response, status_for
from app.api.middleware import declared_length, replayed
from app.api.schemas import BatchItem, BatchItemError, BatchPrediction, Prediction
from app.predictor import Predictor, Result

router = APIRouter(tags=["predict"])

IMAGE_FORMATS = (
    "PNG, JPEG, GIF (first frame), BMP, WebP, TIFF, HEIC/HEIF or AVIF (the primary image)"
)
IMAGE_DESCRIPTION = (
    f"An image of one handwritten digit: {IMAGE_FORMATS}; a photo of ink on paper straight "
    "from a phone, a canvas drawing with transparency, a scan or a screenshot."
)
IncludeInput = Annotated[
    bool,
    Query(description="Also return the 28×28 image the network saw, as a base64 PNG."),
]


def reject_query(refused: str, summary: str):
    """The ``reject`` query parameter: refuse (422) ``refused`` unless reject=false."""
    return Annotated[
        bool,
        Query(
            description=f"Refuse (422) {refused}. With reject=false every readable image "
            "gets 200 with its `digit_score`, for clients that set their own threshold.",
            openapi_examples={
                "refuse non-digits": {"value": True, "summary": summary},
                "decide yourself": {
                    "value": False,
                    "summary": "200 for every readable image; compare digit_score yourself",
                },
            },
        ),
    ]


Reject = reject_query(
    "an image that does not look like one handwritten digit", "422 for a photo or a letter"
)


def input_png_base64(network_input: np.ndarray) -> str:
    """The 28×28 the network saw, as a base64 PNG (grey, white ink on black)."""
    side = preprocessing.INPUT_SIZE
    pixels = np.rint(network_input.reshape(side, side) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _prediction(
    app: FastAPI, result: Result, predictor: Predictor, include_input: bool
) -> Prediction:
    probabilities = result.probabilities.tolist()  # Python floats, as float() makes them
    digit = result.digit
    app.state.metrics.observe_prediction(digit, probabilities[digit], result.preprocess_seconds)
    return Prediction(
        digit=digit,
        confidence=probabilities[digit],
        probabilities=probabilities,
        digit_score=round(result.digit_score, 6),
        model_version=predictor.classifier.version,
        input_png=input_png_base64(result.network_input) if include_input else None,
    )


async def _read_digit(
    scope: Scope,
    app: FastAPI,
    data: bytes,
    predictor: Predictor,
    include_input: bool,
    reject: bool = True,
) -> Prediction:
    result = await predictor.predict(data, reject)
    prediction = _prediction(app, result, predictor, include_input)
    observability.annotate(
        scope, digit=prediction.digit, confidence=round(prediction.confidence, 4)
    )
    return prediction


# The query strings the short cut below understands; any other goes to FastAPI.
_PLAIN_QUERIES = {b"": False, b"include_input=false": False, b"include_input=true": True}
# Bodies the short cut reads: up to the size where the full parser starts to spool
# a file to disk, so that a flood of big uploads is not held in memory twice over.
SHORT_CUT_MAX_BYTES = MultiPartParser.spool_max_size
PATH = "/predict"


class PredictShortCut:
    """POST /predict's usual upload, answered before FastAPI's routing.

    When the body is one file part named ``file`` (``app.api.multipart``) of a
    declared length up to SHORT_CUT_MAX_BYTES, and the query is empty or
    ``include_input=true|false``, this reads the file from the body itself and
    answers the JSON the route would, byte for byte, an unreadable image through the
    same error answer: FastAPI's routing, form parsing, dependency solving and
    response validation cost more than reading a small digit does
    (docs/performance.md). Any other request, and any body it is unsure of, goes on
    to FastAPI with what it read of the body replayed (up to a body limit's 408, or a
    client gone), so that validation and errors stay FastAPI's. It sits inside the
    request log, the metrics and the body limits (``app.main``).
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        self._route: BaseRoute | None = None  # /predict's, which names it in the log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        include_input = _PLAIN_QUERIES.get(scope["query_string"])
        first: dict[bytes, bytes] = {}  # the first of each, as Starlette reads them
        for name, value in scope["headers"]:
            if name in (b"content-type", b"content-length"):
                first.setdefault(name, value)
        content_type = first.get(b"content-type", b"")
        length = declared_length(first.get(b"content-length", b""))
        app = scope["app"]
        predictor = app.state.predictor
        if (
            include_input is None
            or predictor is None
            or not content_type.startswith(b"multipart/form-data")
            or length is None
            or length > SHORT_CUT_MAX_BYTES
        ):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        try:
            while True:
                message = await receive()  # the size and time limits apply as ever
                read.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        except Exception as error:  # a body limit's answer: FastAPI's handlers give it
            await self.app(scope, replayed(read, receive, error), send)
            return
        data = None  # a client gone mid-body: FastAPI answers that
        if read[-1]["type"] == "http.request":
            body = b"".join(message.get("body", b"") for message in read)
            data = multipart.single_file(body, content_type, b"file")
        if data is None:  # or not the usual upload
            await self.app(scope, replayed(read, receive), send)
            return
        if self._route is None:
            self._route = next(
                route for route in iter_route_contexts(app.routes) if route.path == PATH
            )
        scope["route"] = self._route
        try:
            prediction = await _read_digit(scope, app, data, predictor, include_input)
        except preprocessing.PreprocessingError as error:
            await preprocessing_error_response(scope, error)(scope, receive, send)
            return
        content = prediction.model_dump_json(exclude_none=True).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(content)).encode("latin-1")),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def predict(
    request: Request,
    file: Annotated[UploadFile, File(description=IMAGE_DESCRIPTION)],
    predictor: PredictorDep,
    include_input: IncludeInput = False,
    reject: Reject = True,
) -> Prediction:
    """Upload an image as the multipart field `file`; get the digit and all ten
    probabilities. The image is normalised the way MNIST was made (ink found,
    cropped, fitted to 20×20, centred by mass in 28×28) before the network reads it.
    An image that does not show one handwritten digit (a photo, a letter, several
    characters) gets 422 with the reason, unless `reject=false`."""
    data = await file.read()
    return await _read_digit(request.scope, request.app, data, predictor, include_input, reject)


router.add_api_route(
    PATH,
    predict,
    methods=["POST"],
    summary="Read one handwritten digit",
    response_model_exclude_none=True,
    responses={**UPLOAD_ERRORS, **NOT_READY},
    dependencies=[OneFile],
)


@router.post(
    "/predict/batch",
    summary="Read several images in one call",
    response_model_exclude_none=True,
    responses={
        400: UPLOAD_ERRORS[400],
        408: UPLOAD_ERRORS[408],
        413: UPLOAD_ERRORS[413],
        422: UPLOAD_ERRORS[422],
        **NOT_READY,
    },
)
async def predict_batch(
    request: Request,
    files: Annotated[list[UploadFile], File(description=IMAGE_DESCRIPTION)],
    predictor: PredictorDep,
    settings: SettingsDep,
    include_input: IncludeInput = False,
    reject: Reject = True,
) -> BatchPrediction:
    """Upload up to MAX_BATCH_FILES images as repeated multipart fields `files`.
    Answers in upload order; a file that cannot be read gets an `error` entry in
    its place (with the status it would have had alone), the others are still read."""
    if len(files) > settings.max_batch_files:
        raise HTTPException(
            413, f"{len(files)} files; at most {settings.max_batch_files} per batch."
        )
    outcomes = await predictor.predict_many([await upload.read() for upload in files], reject)
    items = []
    for upload, outcome in zip(files, outcomes, strict=True):
        if isinstance(outcome, preprocessing.PreprocessingError):
            error = BatchItemError(
                filename=upload.filename, status=status_for(outcome), detail=str(outcome)
            )
            items.append(BatchItem(filename=upload.filename, error=error))
        else:
            prediction = _prediction(request.app, outcome, predictor, include_input)
            items.append(BatchItem(filename=upload.filename, prediction=prediction))
    observability.annotate(
        request.scope,
        files=len(items),
        digits=[item.prediction.digit if item.prediction else None for item in items],
    )
    return BatchPrediction(predictions=items)
