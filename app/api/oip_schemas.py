"""The JSON shapes of the Open Inference Protocol (KServe v2, REST), as far as this
service speaks it: health, server and model metadata, inference with JSON tensors.

JSON may escape half of a UTF-16 surrogate pair ("\\ud800"), which is no text: a
request's names, ids and parameters holding one are refused (400), as no answer or
error message echoing them could be written."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _text(value: Any) -> Any:
    """``value``, if every string in it (keys too, in dicts and lists, however deep:
    walked without recursion) is Unicode text."""
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not Unicode text (half of a surrogate pair)") from None
        elif isinstance(item, dict):
            waiting += item.keys()
            waiting += item.values()
        elif isinstance(item, list):
            waiting += item
    return value


Text = Annotated[str, AfterValidator(_text)]
Parameters = Annotated[dict[str, Any] | None, AfterValidator(_text)]


class OipError(BaseModel):
    error: str = Field(..., description="What was wrong.", examples=["Unknown model 'resnet'."])


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ServerMetadata(BaseModel):
    name: str = Field(..., examples=["digits"])
    version: str
    extensions: list[str] = Field(default_factory=list)


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(..., examples=["FP32"])
    shape: list[int] = Field(..., description="-1: any size.", examples=[[-1, 28, 28, 1]])
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    name: str = Field(..., examples=["digitnet"])
    versions: list[str]
    platform: str = Field(..., description="The engine that runs the network.")
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    name: Text = Field(..., examples=["input"])
    shape: list[int] = Field(..., examples=[[1, 28, 28, 1]])
    datatype: Text = Field(..., examples=["FP32"])
    parameters: Parameters = None
    data: list[Any] = Field(
        default_factory=list,
        description="The elements in row-major order, flattened or nested as the shape "
        "(absent when the tensor's bytes follow the JSON: binary_data_size in parameters).",
    )


class RequestOutput(BaseModel):
    name: Text = Field(..., examples=["probabilities"])
    parameters: Parameters = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1],
                            "datatype": "BYTES",
                            "parameters": {"content_type": "base64"},
                            "data": ["iVBORw0KGgo..."],
                        }
                    ],
                    "outputs": [{"name": "probabilities"}],
                }
            ]
        }
    )

    id: Text | None = Field(None, description="Echoed in the response.")
    parameters: Parameters = None
    inputs: list[RequestInput] = Field(..., min_length=1)
    outputs: list[RequestOutput] | None = Field(
        None, description="The outputs wanted (default: all)."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[float]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]
