"""The JSON shapes the API answers with, documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

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
                    "model_version": "digitnet-2026-12-02-s1",
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
    engine: str = Field(..., description="litert (converted, checked against Keras) or keras.")
    input_shape: list[int] = Field(..., examples=[[28, 28, 1]])
    classes: list[int] = Field(..., examples=[list(range(10))])
    test_accuracy: float | None = Field(None, description="On the 10,000 MNIST test images.")
    card: dict[str, Any] = Field(default_factory=dict, description="The full model card.")
