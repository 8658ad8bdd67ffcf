"""ASGI middleware that must see the raw request: HEAD as GET, the body size and time limits."""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_content

# More digits than any real length has; Python refuses to convert over 4,300 of them.
LENGTH_DIGITS = 18


def declared_length(value: str | bytes) -> int | None:
    """A Content-Length-like header as a number of bytes: None unless it is all ASCII
    digits; leading zeros, however many, allowed (HTTP allows them); a number too long
    to be a real length is reckoned as 10 ** LENGTH_DIGITS."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0")
    return int(significant or "0") if len(significant) <= LENGTH_DIGITS else 10**LENGTH_DIGITS


def replayed(read: list[Message], receive: Receive, error: Exception | None = None) -> Receive:
    """``receive`` again from the start: the messages already read (or made), then the
    error reading stopped at, if any, then the rest as it comes."""
    pending = iter(read)

    async def replay() -> Message:
        message = next(pending, None)
        if message is not None:
            return message
        if error is not None:
            raise error
        return await receive()

    return replay


def _too_large(limit: int) -> str:
    return f"The request body is over the {limit:,}-byte limit (MAX_UPLOAD_BYTES)."


# Answers that leave the rest of the body unread end the connection: reading on
# would only drain whatever an abusive client keeps sending.
CLOSE = {"Connection": "close"}


class BodySizeLimit:
    """Answer 413 as soon as a body passes ``max_bytes``, declared or streamed, and
    408 when it has not all arrived ``timeout`` seconds after the request began.

    A Content-Length over the limit is refused before a byte is read; a chunked
    body is counted while it arrives, and reading stops at the limit. The
    deadline bounds how long a slow or stalled client holds a request open.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A body declared: answered before it is all read (a 404, a 405, a form FastAPI
        # refused early), the connection is closed, else the rest arriving late would
        # keep it open for good (uvicorn's keep-alive timer does not start again).
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = declared_length(value)
                if declared is not None and declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
                has_body = has_body or declared != 0
            elif name == b"transfer-encoding":
                has_body = True
        received = 0
        body_done = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and has_body and not body_done:
                headers = list(message.get("headers", []))
                if all(name.lower() != b"connection" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # only a disconnect is left to wait for, however long
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"The request body did not arrive within {self.timeout:g} s (BODY_TIMEOUT_S).",
                    headers=CLOSE,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body parsing as they are.
                    raise HTTPException(413, _too_large(self.max_bytes), headers=CLOSE)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await self.app(scope, counting_receive, closing_send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(error_content(scope["path"], _too_large(self.max_bytes))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class HeadAsGet:
    """Answer HEAD as GET would, without the body (RFC 9110 section 9.3.2: every
    general-purpose server supports GET and HEAD).

    Starlette's plain routes do this themselves (the static files, /openapi.json),
    but FastAPI's API routes take only the methods they declare, so a HEAD to /,
    /health/ready or /model (curl -I, uptime monitors, link checkers) got 405. The
    request goes on as a GET, and whatever body the answer has is dropped; its
    headers, Content-Length included, stay those of the GET. A path without GET
    answers 405 with its Allow header, as before. The request log and metrics, outside
    this, still say HEAD.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
