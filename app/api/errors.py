"""Client errors: which status each one gets, and how they are documented."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Scope

from app import observability, preprocessing, rejection, segmentation
from app.api.schemas import ErrorDetail

STATUS_BY_ERROR: dict[type[preprocessing.PreprocessingError], int] = {
    preprocessing.EmptyImageError: 400,
    preprocessing.ImageTooLargeError: 413,
    preprocessing.UnsupportedImageError: 415,
    preprocessing.NoDigitError: 422,
    segmentation.TooManyDigitsError: 422,
}


# The Open Inference Protocol's paths answer errors as {"error": ...} (app/api/routes/oip.py).
OIP_ROOT = "/v2"
MAX_ERROR_CHARS = 500


def error_content(path: str, message: str) -> dict[str, str]:
    """An error's JSON body: {"detail": ...}, or {"error": ...} on the protocol's paths,
    where a message echoing a long request (120,000 input names, a shape of 4,000-digit
    numbers) is cut to MAX_ERROR_CHARS."""
    if path != OIP_ROOT and not path.startswith(OIP_ROOT + "/"):
        return {"detail": message}
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return {"error": message}


def status_for(error: preprocessing.PreprocessingError) -> int:
    for kind, status in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 400


def _response(description: str, example: str, *others: str) -> dict:
    content = (
        {"examples": {text: {"value": {"detail": text}} for text in (example, *others)}}
        if others
        else {"example": {"detail": example}}
    )
    return {
        "model": ErrorDetail,
        "description": description,
        "content": {"application/json": content},
    }


UPLOAD_ERRORS = {
    400: _response(
        "The file is empty, or the multipart body is malformed, has over 1000 parts or a "
        "text field over 1 MiB.",
        "The file is empty.",
    ),
    408: _response(
        "The body did not all arrive within BODY_TIMEOUT_S (a slow or stalled client).",
        "The request body did not arrive within 30 s (BODY_TIMEOUT_S).",
    ),
    413: _response(
        "The body is over MAX_UPLOAD_BYTES, or the image over MAX_PIXELS.",
        "The image is 60000x60000 = 3,600,000,000 pixels; the limit is 16,000,000.",
    ),
    415: _response(
        "Not an image, a format we do not read, or a truncated or corrupt file.",
        "The file is not an image in a supported format "
        "(PNG, JPEG, GIF, BMP, WEBP, TIFF, HEIF, AVIF).",
    ),
    422: _response(
        "No digit in the image: blank or one colour, or not one handwritten digit (a "
        "photo, a letter or symbol, printed text, several characters; the detail says "
        "which; reject=false answers these), or a missing or invalid field.",
        "No digit found: the image is blank or a single colour.",
        f"No digit found: {rejection.PHOTO}",
        f"No digit found: {rejection.SYMBOL}",
        f"No digit found: {rejection.SEVERAL}",
    ),
}
# /read answers as /predict does, and 422 when there are more digits than MAX_DIGITS.
READ_ERRORS = {
    **UPLOAD_ERRORS,
    422: _response(
        "No digit in the image (blank, one colour, only marks), marks that do not look "
        "like handwritten digits (a photo, letters, printed text; the detail says which; "
        "reject=false answers these), more digits than MAX_DIGITS, or a missing or "
        "invalid field.",
        "More than 32 digits (MAX_DIGITS): 57 found at least.",
        f"No digit found: {rejection.LETTERS}",
        f"No digit found: {rejection.PHOTO}",
    ),
}
NOT_READY = {503: _response("The model is not loaded yet.", "The model is not loaded yet.")}


def preprocessing_error_response(
    scope: Scope, error: preprocessing.PreprocessingError
) -> JSONResponse:
    """The answer to an upload that cannot be read, its error named in the request log."""
    observability.annotate(scope, error=type(error).__name__)
    return JSONResponse({"detail": str(error)}, status_code=status_for(error))


async def _preprocessing_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, preprocessing.PreprocessingError)
    return preprocessing_error_response(request.scope, error)


FILE_FIELDS = ("file", "files")


def text_for_file(error: RequestValidationError) -> str | None:
    """The message for text sent where the image file belongs (``curl -F
    file=digit.png``, the @ forgotten, sends the name as text), or None."""
    for problem in error.errors():
        location = problem.get("loc", ())
        if location[1:2] and location[1] in FILE_FIELDS and isinstance(problem.get("input"), str):
            field = location[1]
            return (
                f"The field `{field}` holds text, not a file: send the image itself, as "
                f"curl -F {field}=@digit.png does (the @ sends the file's bytes)."
            )
    return None


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's list of problems, but one sentence for text in place of a file."""
    assert isinstance(error, RequestValidationError)
    message = text_for_file(error)
    if message is None:
        return await request_validation_exception_handler(request, error)
    return JSONResponse({"detail": message}, status_code=422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's answer, but on the protocol's paths in its shape: their routes' errors,
    and a path or method routing does not know there (404, 405)."""
    assert isinstance(error, HTTPException)
    content = error_content(request.url.path, str(error.detail))
    if "error" not in content:
        return await http_exception_handler(request, error)
    return JSONResponse(content, status_code=error.status_code, headers=error.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(preprocessing.PreprocessingError, _preprocessing_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
