"""The HTTP protocol the server runs: uvicorn's httptools protocol, its 400 in JSON.

A request uvicorn cannot parse (a malformed request line or header, a bad chunk
size, a lone LF) never reaches the app: uvicorn answers 400 itself, in plain text,
and closes the connection. ``JsonErrorsProtocol`` answers it as the app answers
every other error, ``{"detail": ...}`` with an ``X-Request-ID``; uvicorn still logs
its warning.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.observability import REQUEST_ID_HEADER, new_request_id

# What uvicorn says ("Invalid HTTP request received."), and what to do about it.
HINT = "its request line, a header or its chunked framing is not HTTP/1.1 (RFC 9112)"


class JsonErrorsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"detail": f"{msg.rstrip('.')}: {HINT}."}).encode()
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            REQUEST_ID_HEADER + b": %s\r\n" % new_request_id().encode(),  # as every answer
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
