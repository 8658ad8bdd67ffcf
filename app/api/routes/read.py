"""POST /read: one line of handwritten digits, a whole number."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from app import observability
from app.api.deps import OneFile, PredictorDep
from app.api.errors import NOT_READY, READ_ERRORS
from app.api.routes.predict import (
    IMAGE_FORMATS,
    IncludeInput,
    input_png_base64,
    reject_query,
)
from app.api.schemas import Box, NumberReading, OtherMark, ReadDigit

router = APIRouter(tags=["read"])

ReadReject = reject_query(
    "an image whose digits do not look like handwritten digits (a photo, letters, a scribble)",
    "422 for a photo or a word",
)

NUMBER_DESCRIPTION = (
    "An image of one line of handwritten digits (an amount, a postcode, a meter reading): "
    f"{IMAGE_FORMATS}, as for /predict."
)


@router.post(
    "/read",
    summary="Read a whole number",
    response_model_exclude_none=True,
    responses={**READ_ERRORS, **NOT_READY},
    dependencies=[OneFile],
)
async def read(
    request: Request,
    file: Annotated[UploadFile, File(description=NUMBER_DESCRIPTION)],
    predictor: PredictorDep,
    include_input: IncludeInput = False,
    reject: ReadReject = True,
) -> NumberReading:
    """Upload an image of a number as the multipart field `file`; get its digits
    left to right, each with its probabilities and its box in the image (pixels of
    the upload, after EXIF orientation). Digits are found as connected strokes,
    strokes of one digit joined, touching digits split where the network reads
    the split best; each is normalised exactly as /predict normalises one digit.
    Rules under or around the digits are ignored; short marks that are no digit
    (a decimal point, a comma, a dash) are left out of `number` and listed under
    `other` with their boxes. `confidence` is the product of the digits'. An image
    whose digits do not look like digits (a photo, letters, a scribble) gets 422
    with the reason, unless `reject=false`."""
    reading = await predictor.read(await file.read(), reject)
    digits = [
        ReadDigit(
            digit=digit.digit,
            confidence=digit.confidence,
            probabilities=[float(p) for p in digit.probabilities],
            box=Box(**vars(digit.box)),
            input_png=input_png_base64(digit.network_input) if include_input else None,
        )
        for digit in reading.digits
    ]
    number = "".join(str(digit.digit) for digit in digits)
    confidence = math.prod(digit.confidence for digit in digits)
    observability.annotate(request.scope, number=number, confidence=round(confidence, 4))
    return NumberReading(
        number=number,
        confidence=confidence,
        digits=digits,
        other=[OtherMark(kind=mark.kind, box=Box(**vars(mark.box))) for mark in reading.marks],
        digit_score=reading.digit_score,
        model_version=predictor.classifier.version,
    )
