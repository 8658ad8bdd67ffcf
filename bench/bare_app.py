"""The work alone: the service's own preprocessing and network, without the service.

    MODEL_PATH=model/artifacts/digitnet.keras uvicorn bench.bare_app:app

A bare ASGI callable: no FastAPI or Starlette, no middleware, no request log, no
metrics, no micro-batcher, no validation beyond what the work needs; the
worker's malloc and GC settings are the service's (``app.memory``). It slices
the file out of the upload (``app.api.multipart``), normalises it as the service
does (``app.fast_path``, else ``app.preprocessing``), runs the network in LiteRT
on a batch of one (``app.inference``; an unsure digit is read five more times,
``app.second_look``), and answers the digit and the ten probabilities.

It reads each upload alone, as one request at a time would, so ``make bench`` sets
it beside the no-op: bare / no-op is what the image work and the network leave of
the HTTP ceiling, and service / bare is what everything else the service does
(routing, errors, the request log, metrics) costs, less what its micro-batch saves
under load by doing the work of many requests in a row (reading their small PNGs,
calibrating their outputs): at 64 connections the service has done 99-134 % of
this server's rate since that moved into the batch (docs/performance.md).
"""

from __future__ import annotations

import json

import numpy as np

from app import fast_path, memory, preprocessing, second_look
from app.api import multipart
from app.api.errors import status_for
from app.inference import load_configured

classifier = load_configured()  # MODEL_PATH and INFERENCE_ENGINE, as the service reads them


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            memory.tune_malloc()  # the worker set up as the service's lifespan does
            memory.freeze_startup_objects()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/health/ready":
        await _answer(send, 200, {"status": "ok"})
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    data = multipart.single_file(bytes(body), content_type, b"file")
    if scope["path"] != "/predict" or data is None:
        await _answer(send, 400, {"detail": "POST /predict with one file part named file"})
        return
    try:
        network_input = fast_path.preprocess(data)
    except preprocessing.PreprocessingError as error:
        await _answer(send, status_for(error), {"detail": str(error)})
        return
    outputs = second_look.read(classifier, network_input[np.newaxis])
    probabilities = classifier.interpret(outputs)[0][0]
    await _answer(
        send,
        200,
        {"digit": int(np.argmax(probabilities)), "probabilities": probabilities.tolist()},
    )


async def _answer(send, status: int, content: dict) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
