"""The JSON shapes the API answers with, documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_PROBABILITIES = [
    0.0001, 0.0002, 0.0003, 0.9962, 0.0, 0.0021, 0.0, 0.0004, 0.0006, 0.0001,
]  # fmt: skip


class Prediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "digit": 3,
                    "confidence": 0.9962,
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "digit_score": 0.9991,
                    "model_version": "digitnet-2026-12-03-s1",
                }
            ]
        }
    )

    digit: int = Field(..., ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(..., ge=0, le=1, description="Its probability.")
    probabilities: list[float] = Field(
        ...,
        min_length=10,
        max_length=10,
        description="Softmax over the ten digits, calibrated on validation data (a confidence "
        "of 0.9 is right about 90 % of the time); index = digit; sums to 1.",
    )
    digit_score: float = Field(
        1.0,
        ge=0,
        le=1,
        description="How much the image looks like one handwritten digit at all (the "
        "network's 1 − p(not a digit)). Below the model's threshold (`GET /model`: "
        "card.calibration.reject_below) the upload is refused unless reject=false.",
    )
    model_version: str = Field(..., description="Which model answered.")
    input_png: str | None = Field(
        None,
        description="With include_input=true: the 28×28 image the network saw "
        "(base64 PNG, white ink on black).",
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "No digit found: the image is blank."}]}
    )

    detail: str | list[Any] = Field(..., description="What was wrong with the request.")


class BatchItemError(BaseModel):
    filename: str | None = Field(None, description="The file's name as uploaded.")
    status: int = Field(..., description="The status this file alone would have got.")
    detail: str = Field(..., description="What was wrong with this file.")


class BatchItem(BaseModel):
    filename: str | None = Field(None, description="The file's name as uploaded.")
    prediction: Prediction | None = Field(None, description="The result, if the file was read.")
    error: BatchItemError | None = Field(None, description="Why not, if it was not.")


class BatchPrediction(BaseModel):
    predictions: list[BatchItem] = Field(..., description="One entry per file, in upload order.")


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])
    model_loaded: bool | None = None
    model_version: str | None = None


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    sha256: str = Field(..., description="sha256 of the served .keras file.")
    engine: str = Field(
        ...,
        description="The network that answers: litert (float32, checked against Keras), "
        "litert-int8 (int8, where the CPU has VNNI or ARM's dot product) or keras.",
    )
    input_shape: list[int] = Field(..., examples=[[28, 28, 1]])
    classes: list[int] = Field(..., examples=[list(range(10))])
    test_accuracy: float | None = Field(None, description="On the 10,000 MNIST test images.")
    card: dict[str, Any] = Field(default_factory=dict, description="The full model card.")
    pair_reader: dict[str, Any] | None = Field(
        None,
        description="The card of the network /read reads touching digits with "
        "(pairnet_card.json), or null where none is served.",
    )


class Box(BaseModel):
    x: int = Field(..., ge=0, description="Left edge, in the uploaded image's pixels.")
    y: int = Field(..., ge=0, description="Top edge (after EXIF orientation).")
    width: int = Field(..., ge=0)
    height: int = Field(..., ge=0)


class ReadDigit(BaseModel):
    digit: int = Field(..., ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(..., ge=0, le=1, description="Its probability.")
    probabilities: list[float] = Field(
        ..., min_length=10, max_length=10, description="Softmax output; index = digit."
    )
    box: Box = Field(..., description="Where the digit is in the image.")
    input_png: str | None = Field(
        None, description="With include_input=true: the 28×28 image the network saw."
    )


class OtherMark(BaseModel):
    kind: Literal["point", "dash", "mark"] = Field(
        ...,
        description="point: a decimal point or comma; dash: a short flat stroke; "
        "mark: any other short stroke on the line.",
    )
    box: Box


class NumberReading(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "25",
                    "confidence": 0.9813,
                    "digits": [
                        {
                            "digit": 2,
                            "confidence": 0.9901,
                            "probabilities": [
                                0.0, 0.0012, 0.9901, 0.0031, 0.0, 0.0002, 0.0, 0.0049, 0.0005, 0.0,
                            ],
                            "box": {"x": 40, "y": 32, "width": 70, "height": 96},
                        },
                        {
                            "digit": 5,
                            "confidence": 0.9911,
                            "probabilities": [
                                0.0, 0.0, 0.0, 0.0043, 0.0, 0.9911, 0.0031, 0.0, 0.0012, 0.0003,
                            ],
                            "box": {"x": 138, "y": 30, "width": 66, "height": 99},
                        },
                    ],
                    "other": [
                        {"kind": "point", "box": {"x": 120, "y": 118, "width": 10, "height": 10}}
                    ],
                    "digit_score": 0.9712,
                    "model_version": "digitnet-2026-11-24-s1",
                }
            ]
        }
    )  # fmt: skip

    number: str = Field(..., description="The digits read, left to right; marks left out.")
    confidence: float = Field(
        ..., ge=0, le=1, description="The product of the digits' confidences."
    )
    digits: list[ReadDigit] = Field(..., description="Each digit, left to right.")
    other: list[OtherMark] = Field(
        ..., description="Marks on the line that are no digit (not part of `number`)."
    )
    digit_score: float = Field(
        ...,
        ge=0,
        le=1,
        description="How much the digits look like handwritten digits: the geometric mean "
        "of each digit's score (1 − p(not a digit), times how much it looks like one whole "
        "digit); 0 for strokes cut by the image's left or right edge in three places or "
        "more, or five running from its top edge to its bottom (stripes, a texture). Under "
        "0.3 the image is refused with 422 unless reject=false; a line read as 1s alone "
        "(two or more) under 0.8, one mostly of 1s (three or more, half its digits or "
        "more) under 0.6, a line of one digit (read as /predict reads the image, "
        "and refused where /predict refuses it) under 0.2; one with a point wholly above or "
        "below a digit, over its middle (the dot of a ? or a !), whatever its score.",
    )
    model_version: str = Field(..., description="Which model answered.")
