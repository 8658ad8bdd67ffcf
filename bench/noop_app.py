"""The ceiling: a FastAPI endpoint that only reads the multipart upload.

    uvicorn bench.noop_app:app

Same framework, same multipart parser, same uvicorn options as the service; no
image work and no model. Whatever the service does on top costs its req/s.
"""

from __future__ import annotations

from fastapi import FastAPI, UploadFile

app = FastAPI(title="no-op upload")


@app.post("/predict")
async def predict(file: UploadFile) -> dict:
    data = await file.read()
    return {"filename": file.filename, "bytes": len(data)}


@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ok"}
