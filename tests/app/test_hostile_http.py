"""Hostile requests that need a socket: bodies that are not multipart or are
malformed, chunked bodies without a Content-Length, thousands of parts, slow and
stalled clients. Each gets a fast, documented answer from a real server, which
lives on (the ``server`` fixture checks it after the module)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import FAST
from tests.app.test_hostile_inputs import JSON, corpus_bytes, digit, encode
from tests.conftest import LiveServer


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=FAST * 2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def send_until_answered(sock: socket.socket, head: bytes, pieces: Iterator[bytes]) -> None:
    """Send a request piece by piece, as a client that streams: stop once answered."""
    sock.sendall(head)
    for piece in pieces:
        if select.select([sock], [], [], 0)[0]:
            return  # the server has answered (or closed): stop sending
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return


def chunked(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


BOUNDARY = b"hostileboundary"
MULTIPART = b"multipart/form-data; boundary=" + BOUNDARY


def part(name: bytes, content: bytes, filename: bytes | None = b"upload.png") -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return (
        b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition + b"\r\n"
        b"Content-Type: image/png\r\n\r\n" + content + b"\r\n"
    )


def request_head(path: str, *headers: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def expect_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    assert status == expected, body[:200]
    assert headers["content-type"] == JSON
    assert "x-request-id" in headers
    detail = httpx.Response(status, content=body).json()["detail"]
    assert isinstance(detail, str)
    return detail


@pytest.mark.slow
def test_a_body_not_multipart_or_malformed_over_http(server: LiveServer) -> None:
    image = corpus_bytes("png sent as jpeg")
    malformed = part(b"file", image).replace(b"\r\n\r\n", b"\r\nbroken header\r\n\r\n", 1)
    with httpx.Client(base_url=server.url, timeout=FAST) as http:
        bare = http.post("/predict", content=image, headers={"Content-Type": "image/png"})
        assert bare.status_code == 422 and bare.json()["detail"][0]["loc"] == ["body", "file"]
        for body in (b"no delimiter at all", malformed + b"--" + BOUNDARY + b"--\r\n"):
            response = http.post("/predict", content=body, headers={"Content-Type": MULTIPART})
            assert response.status_code == 400, response.text
            assert "multipart" in response.json()["detail"]
        assert http.get("/health/ready").status_code == 200


@pytest.mark.slow
def test_oversized_chunked_body_without_content_length(server: LiveServer) -> None:
    head = request_head("/predict", b"Transfer-Encoding: chunked", b"Content-Type: " + MULTIPART)
    opening = part(b"file", b"")[:-2]  # the part's headers; its content follows

    def pieces() -> Iterator[bytes]:
        yield chunked(opening)
        for _ in range(400):  # 100 MiB, far over the 5 MiB limit, if the server read it all
            yield chunked(bytes(256 * 1024))
        yield b"0\r\n\r\n"

    with connect(server) as sock:
        started = time.perf_counter()
        send_until_answered(sock, head, pieces())
        status, headers, body = read_response(sock)
        seconds = time.perf_counter() - started
        assert "MAX_UPLOAD_BYTES" in expect_json_error(status, headers, body, 413)
        assert headers.get("connection") == "close"
        assert seconds < FAST
        sock.settimeout(FAST)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # and the server hangs up instead of reading on


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "filename", "limit"),
    [("/predict", b"x.png", "files"), ("/predict/batch", None, "fields")],
    ids=["files", "fields"],
)
def test_thousands_of_parts(server: LiveServer, path: str, filename: bytes | None, limit: str):
    body = b"".join(part(b"file", b"x", filename) for _ in range(5000)) + b"--" + BOUNDARY + b"--"
    head = request_head(path, b"Content-Type: " + MULTIPART, b"Content-Length: %d" % len(body))
    with connect(server) as sock:
        started = time.perf_counter()
        send_until_answered(
            sock, head, iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        )
        status, headers, response = read_response(sock)
        assert time.perf_counter() - started < FAST
    detail = expect_json_error(status, headers, response, 400)
    assert f"Too many {limit}" in detail and "1000" in detail


@pytest.mark.slow
def test_a_slow_client_does_not_hold_up_others(server: LiveServer) -> None:
    """One client trickles its upload over 3 s; others are served meanwhile, and the
    slow one is answered as soon as its last byte is in."""
    image = corpus_bytes("png sent as jpeg")
    body = part(b"file", image) + b"--" + BOUNDARY + b"--\r\n"
    head = request_head(
        "/predict", b"Content-Type: " + MULTIPART, b"Content-Length: %d" % len(body)
    )
    slow_answer: list[tuple[int, float]] = []

    def trickle() -> None:
        with connect(server) as sock:
            sock.sendall(head)
            step = max(1, len(body) // 30)
            for start in range(0, len(body), step):
                sock.sendall(body[start : start + step])
                time.sleep(0.1)
            done = time.perf_counter()
            status, _, _ = read_response(sock)
            slow_answer.append((status, time.perf_counter() - done))

    # A second client sends only part of its headers, and never the rest.
    with connect(server) as stalled:
        stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        slow = threading.Thread(target=trickle)
        slow.start()
        with httpx.Client(base_url=server.url, timeout=FAST) as http:
            while slow.is_alive():
                started = time.perf_counter()
                response = http.post("/predict", files={"file": ("7.png", image, "image/png")})
                assert response.status_code == 200
                assert time.perf_counter() - started < FAST
                time.sleep(0.2)
        slow.join()
    [(status, seconds)] = slow_answer
    assert status == 200 and seconds < FAST


@pytest.mark.slow
def test_a_stalled_upload_gets_408(make_server: Callable[..., LiveServer], model_path: Path):
    server = make_server({"MODEL_PATH": str(model_path), "BODY_TIMEOUT_S": "1"}).start()
    body = part(b"file", encode(digit(), "PNG")) + b"--" + BOUNDARY + b"--\r\n"
    head = request_head(
        "/predict", b"Content-Type: " + MULTIPART, b"Content-Length: %d" % len(body)
    )
    with connect(server) as sock:
        started = time.perf_counter()
        sock.sendall(head + body[:100])  # and then nothing
        status, headers, response = read_response(sock)
        seconds = time.perf_counter() - started
    assert "BODY_TIMEOUT_S" in expect_json_error(status, headers, response, 408)
    assert headers.get("connection") == "close"
    assert 1.0 <= seconds < 1.0 + FAST
    assert httpx.get(f"{server.url}/health/ready", timeout=FAST).status_code == 200


@pytest.mark.slow
def test_a_content_length_with_thousands_of_leading_zeros(server: LiveServer) -> None:
    """HTTP allows leading zeros; Python refuses to convert over 4,300 digits (a 500
    from /predict's short cut, and no refusal at the door for an oversized one)."""
    body = part(b"file", encode(digit(), "PNG")) + b"--" + BOUNDARY + b"--\r\n"
    padded = b"0" * 4300 + str(len(body)).encode()
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(
            request_head("/predict", b"Content-Type: " + MULTIPART, b"Content-Length: " + padded)
            + body
        )
        status, _, answer = read_response(sock)
        assert status == 200, answer[:200]
    oversized = b"0" * 4300 + b"99999999"
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(request_head("/predict", b"Content-Length: " + oversized))  # no body sent
        status, headers, answer = read_response(sock)
        assert "MAX_UPLOAD_BYTES" in expect_json_error(status, headers, answer, 413)


def test_declared_lengths() -> None:
    from app.api.middleware import LENGTH_DIGITS, declared_length

    assert declared_length("0" * 5000 + "12") == declared_length(b"12") == 12
    assert declared_length("0") == 0 and declared_length("0" * 5000) == 0
    assert declared_length("9" * 5000) == 10**LENGTH_DIGITS  # a length no body has
    for bad in ("", "-1", "+1", "1_0", "0x10", " 1", "١٢", "1.0"):
        assert declared_length(bad) is None, bad


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/nowhere", "/predict"])
def test_an_answer_before_the_body_is_read_closes_the_connection(
    server: LiveServer, path: str
) -> None:
    """A 404, or a form refused at its first bytes, leaves the body unread: kept alive,
    the rest arriving late held the connection open for good."""
    head = request_head(path, b"Content-Type: " + MULTIPART, b"Content-Length: 1500000")
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(head + b"not a multipart body")
        status, headers, _ = read_response(sock)
        assert status in (400, 404) and headers["connection"] == "close"
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # closed by the server, not left open
    with httpx.Client(base_url=server.url, timeout=FAST) as http:  # a read body: kept alive
        response = http.post("/predict", files={"file": ("d.png", encode(digit(), "PNG"))})
        assert response.status_code == 200 and "connection" not in response.headers


@pytest.mark.slow
def test_a_request_that_is_not_http_gets_a_json_400(server: LiveServer) -> None:
    """uvicorn answers what it cannot parse itself: in JSON too, and the server goes on."""
    requests = (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
        request_head("/predict", b"Transfer-Encoding: chunked") + b"zz\r\n",
    )
    for raw in requests:
        with contextlib.closing(connect(server)) as sock:
            sock.sendall(raw)
            status, headers, body = read_response(sock)
        assert status == 400 and headers["content-type"] == JSON, body
        assert headers["connection"] == "close" and len(headers["x-request-id"]) == 32
        assert "not HTTP/1.1" in httpx.Response(status, content=body).json()["detail"]
    assert httpx.get(f"{server.url}/health/ready", timeout=FAST).status_code == 200
