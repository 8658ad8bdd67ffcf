"""Graceful shutdown: a request in flight when SIGTERM arrives still gets its answer.

This is what a rolling update or a scale-down does to a pod (and `docker stop` to a
container): SIGTERM, then SIGKILL after the grace period. The server must stop
accepting new connections at once, finish what it has started, and exit 0.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

BOUNDARY = "digits-sigterm-test"
IN_FLIGHT = re.compile(r"^digits_http_requests_in_flight (\d+(?:\.\d+)?)$", re.MULTILINE)


def digit_upload() -> tuple[bytes, str]:
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 12:16] = 255  # a "1", white on black as in MNIST
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    body = (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="one.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + buffer.getvalue()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def requests_in_flight(url: str) -> float:
    """The server's own count, the /metrics request itself included."""
    match = IN_FLIGHT.search(httpx.get(f"{url}/metrics", timeout=5).text)
    assert match, "digits_http_requests_in_flight is missing from /metrics"
    return float(match.group(1))


def refuses_connections(port: int) -> bool:
    """Whether a new connection fails: refused, or reset as the listening socket closes
    under a handshake already begun."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


def test_a_request_in_flight_at_sigterm_completes(model_path: Path) -> None:
    server = LiveServer({"MODEL_PATH": str(model_path)}).start()
    try:
        body, content_type = digit_upload()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        half = len(body) // 2
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            connection.sendall(head + body[:half])
            # The app has the request (headers parsed, body half read) before we signal.
            wait_for(lambda: requests_in_flight(server.url) >= 2, 10, "our request in flight")

            server.process.send_signal(signal.SIGTERM)
            wait_for(lambda: refuses_connections(server.port), 10, "new connections refused")
            assert server.process.poll() is None, "the server quit with a request in flight"

            connection.sendall(body[half:])
            response = http.client.HTTPResponse(connection)
            response.begin()
            payload = response.read()

        assert response.status == 200, payload
        answer = json.loads(payload)
        assert answer["digit"] == 1, answer  # the request was read to its end
        assert len(answer["probabilities"]) == 10
        assert response.getheader("connection", "").lower() == "close"

        code = server.process.wait(timeout=30)
        assert code == 0, f"exit status {code} after SIGTERM\n{server.output()}"
        assert refuses_connections(server.port)
    finally:
        server.stop()
