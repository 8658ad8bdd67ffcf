"""POST /predict and /predict/batch."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.formparsers import MultiPartParser

from app import observability, preprocessing
from app.api import multipart
from app.api.deps import OneFile, PredictorDep, SettingsDep
from app.api.errors import NOT_READY, UPLOAD_ERRORS, status_for
from app.api.middleware import declared_length
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
Reject = Annotated[
    bool,
    Query(
        description="Refuse (422) an image that does not look like one handwritten digit. "
        "With reject=false every readable image gets 200 with its `digit_score`, for "
        "clients that set their own threshold.",
        openapi_examples={
            "refuse non-digits": {"value": True, "summary": "422 for a photo or a letter"},
            "decide yourself": {
                "value": False,
                "summary": "200 for every readable image; compare digit_score yourself",
            },
        },
    ),
]


def _prediction(
    request: Request, result: Result, predictor: Predictor, include_input: bool
) -> Prediction:
    probabilities = [float(p) for p in result.probabilities]
    request.app.state.metrics.observe_prediction(
        result.digit, probabilities[result.digit], result.preprocess_seconds
    )
    return Prediction(
        digit=result.digit,
        confidence=probabilities[result.digit],
        probabilities=probabilities,
        digit_score=round(result.digit_score, 6),
        model_version=predictor.classifier.version,
        input_png=preprocessing.input_png_base64(result.network_input) if include_input else None,
    )


async def _read_digit(
    request: Request, data: bytes, predictor: Predictor, include_input: bool, reject: bool = True
) -> Prediction:
    result = await predictor.predict(data, reject)
    prediction = _prediction(request, result, predictor, include_input)
    observability.annotate(
        request.scope, digit=prediction.digit, confidence=round(prediction.confidence, 4)
    )
    return prediction


# The query strings the short cut below understands; any other goes to FastAPI.
_PLAIN_QUERIES = {b"": False, b"include_input=false": False, b"include_input=true": True}
# Bodies the short cut reads: up to the size where the full parser starts to spool
# a file to disk, so that a flood of big uploads is not held in memory twice over.
SHORT_CUT_MAX_BYTES = MultiPartParser.spool_max_size


class SingleUploadRoute(APIRoute):
    """POST /predict as FastAPI declares it, with a short cut for the usual upload.

    When the body is one file part named ``file`` (``app.api.multipart``) of a
    declared length up to SHORT_CUT_MAX_BYTES, and the query is empty or
    ``include_input=true|false``, the handler reads the file from
    the body itself and answers the same JSON: FastAPI's form parsing, dependency
    solving and response validation cost more than reading a small digit does
    (docs/performance.md). Any other request, and any body the short cut is unsure
    of, goes to FastAPI's own handler, whose validation and errors stay the only ones.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()

        async def handler(request: Request) -> Response:
            include_input = _PLAIN_QUERIES.get(request.scope["query_string"])
            content_type = request.headers.get("content-type", "")
            length = declared_length(request.headers.get("content-length", ""))
            predictor = request.app.state.predictor
            if (
                include_input is None
                or predictor is None
                or not content_type.startswith("multipart/form-data")
                or length is None
                or length > SHORT_CUT_MAX_BYTES
            ):
                return await full(request)
            try:
                body = await request.body()  # the size and time limits apply as ever
            except HTTPException:
                raise
            except Exception:  # a client gone mid-body: FastAPI's handler answers that
                return await full(request)
            data = multipart.single_file(body, content_type.encode("latin-1"), b"file")
            if data is None:
                return await full(request)  # it parses the body kept by request.body()
            prediction = await _read_digit(request, data, predictor, include_input)
            return Response(
                prediction.model_dump_json(exclude_none=True), media_type="application/json"
            )

        return handler


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
    return await _read_digit(request, await file.read(), predictor, include_input, reject)


router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    summary="Read one handwritten digit",
    response_model_exclude_none=True,
    responses={**UPLOAD_ERRORS, **NOT_READY},
    dependencies=[OneFile],
    route_class_override=SingleUploadRoute,
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
            prediction = _prediction(request, outcome, predictor, include_input)
            items.append(BatchItem(filename=upload.filename, prediction=prediction))
    observability.annotate(
        request.scope,
        files=len(items),
        digits=[item.prediction.digit if item.prediction else None for item in items],
    )
    return BatchPrediction(predictions=items)
