"""The naive way, as tutorials write it: ``model.predict`` on every request.

    MODEL_PATH=model/artifacts/digitnet.keras uvicorn bench.naive_app:app

PIL open -> convert("L") -> resize to 28×28 -> numpy / 255 -> ``model.predict``
on a batch of one, inside the ``async`` handler (so the event loop waits on it).
No MNIST-style normalisation: this is the cost baseline, not an accuracy one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from fastapi import FastAPI, UploadFile
from PIL import Image

from app.config import DEFAULT_MODEL_PATH

model = keras.saving.load_model(Path(os.environ.get("MODEL_PATH", DEFAULT_MODEL_PATH)))
app = FastAPI(title="naive model.predict")


@app.post("/predict")
async def predict(file: UploadFile) -> dict:
    image = Image.open(io.BytesIO(await file.read())).convert("L").resize((28, 28))
    x = (np.asarray(image, dtype=np.float32) / 255.0).reshape(1, 28, 28, 1)
    probabilities = model.predict(x, verbose=0)[0]
    return {"digit": int(np.argmax(probabilities)), "probabilities": probabilities.tolist()}


@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ok"}
