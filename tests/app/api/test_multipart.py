"""The /predict short cut: ``multipart.single_file`` against the full form parser,
and the route's answers against FastAPI's own handler."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.api import multipart
from app.api.routes.predict import SHORT_CUT_MAX_BYTES
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import gone_mid_body, http_scope, png_bytes

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}".encode()


def body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"\r\n") -> bytes:
    opened = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return preamble + opened + b"--" + BOUNDARY.encode() + b"--" + epilogue


def part(data: bytes, *headers: str) -> bytes:
    return "".join(f"{header}\r\n" for header in headers).encode() + b"\r\n" + data


FILE = 'Content-Disposition: form-data; name="file"; filename="d.png"'


def full_parse(content: bytes, content_type: bytes) -> list[tuple[str, bytes | str]] | None:
    """What Starlette's form parser (FastAPI's) makes of a body; None if it refuses it."""

    async def parse() -> list[tuple[str, bytes | str]]:
        async def stream():
            yield content

        headers = Headers(raw=[(b"content-type", content_type)])
        form = await MultiPartParser(headers, stream()).parse()
        try:
            return [
                (name, await value.read() if isinstance(value, UploadFile) else value)
                for name, value in form.multi_items()
            ]
        finally:
            await form.close()

    try:
        return asyncio.run(parse())
    except MultiPartException:
        return None


def test_what_clients_send_is_read() -> None:
    data = png_bytes(stroke_digit())
    request = httpx.Request(
        "POST", "http://x/predict", files={"file": ("7.png", data, "image/png")}
    )
    sent = request.read()
    assert multipart.single_file(sent, request.headers["content-type"].encode(), b"file") == data
    # curl -F file=@7.png, and a browser's FormData, byte for byte.
    for boundary in ("------------------------d74496d66958873e", "----WebKitFormBoundaryx7b"):
        framed = (
            f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="7.png"\r\n'
            + b"Content-Type: image/png\r\n\r\n"
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}".encode()
        assert multipart.single_file(framed, content_type, b"file") == data


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(
            body(part(b"x", FILE), part(b"1", 'Content-Disposition: form-data; name="a"')),
            CONTENT_TYPE,
            id="a second part",
        ),
        (body(part(b"x", 'Content-Disposition: form-data; name="file"')), CONTENT_TYPE),
        (
            body(part(b"x", 'Content-Disposition: form-data; name="image"; filename="a"')),
            CONTENT_TYPE,
        ),
        (body(part(b"x", FILE, "Content-Transfer-Encoding: base64")), CONTENT_TYPE),
        (body(part(b"x", FILE, FILE)), CONTENT_TYPE),
        (body(part(b"x", "Content-Type: image/png")), CONTENT_TYPE),
        (body(part(b"x", FILE.replace(":", " :", 1))), CONTENT_TYPE),
        (body(part(b"x", FILE), preamble=b"hello\r\n"), CONTENT_TYPE),
        (b"XX" + body(part(b"x", FILE))[2:], CONTENT_TYPE),  # no opening delimiter
        (body(part(b"x", FILE))[: -len(b"--\r\n")], CONTENT_TYPE),  # never closed
        (body(part(b"x", FILE)).replace(b"\r\n\r\n", b"\r\n"), CONTENT_TYPE),
        (body(part(b"x", FILE)), b"multipart/form-data"),
        pytest.param(
            body(part(b"x", FILE, "Content-Type: image/png", "Content-Type: image/png")),
            CONTENT_TYPE,
            id="a part header twice",
        ),
        pytest.param(
            body(part(b"x", FILE.replace("d.png", "d" * 1100 + ".png"))),
            CONTENT_TYPE,
            id="a part header over 1 kB",
        ),
        pytest.param(
            body(part(b"x", FILE, "Content-Type: image/png\rjunk")), CONTENT_TYPE, id="a bare CR"
        ),
        pytest.param(
            body(part(b"x", FILE)), CONTENT_TYPE + b"; charset=utf-16", id="another parameter"
        ),
        pytest.param(
            body(part(b"x", FILE)).replace(BOUNDARY.encode(), b"b" * 71),
            b"multipart/form-data; boundary=" + b"b" * 71,
            id="a boundary over 70 characters",
        ),
        (body(part(b"x", FILE)), b"multipart/mixed; boundary=" + BOUNDARY.encode()),
    ],
)
def test_anything_else_is_left_to_the_full_parser(content: bytes, content_type: bytes) -> None:
    assert multipart.single_file(content, content_type, b"file") is None


def test_boundary_lookalikes_in_the_file_are_data() -> None:
    data = b"\r\n--" + BOUNDARY.encode()[:-1] + b"\r\n--\r\n" + BOUNDARY.encode()
    assert multipart.single_file(body(part(data, FILE)), CONTENT_TYPE, b"file") == data


HEADER_NAMES = st.sampled_from(["Content-Disposition", "content-disposition", "CONTENT-TYPE",
                                "Content-Type", "Content-Transfer-Encoding", "X-Note"])  # fmt: skip


@st.composite
def bodies(draw) -> tuple[bytes, bytes, bool | None]:
    """A multipart body, often the usual shape, often not, and whether it is the
    usual one (None: the first file holds the delimiter itself, so it is cut short)."""
    boundary = draw(st.text("abcXYZ019-_'", min_size=1, max_size=20)).encode()
    delimiter = b"\r\n--" + boundary
    parts, usual = [], None
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        name = draw(st.sampled_from(["file", "file", "file", "image"]))
        filename = draw(st.text("ab7 .-é", max_size=8) | st.none())
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        headers = [("Content-Disposition", disposition)]
        if draw(st.booleans()):
            headers.append(("Content-Type", draw(st.sampled_from(["image/png", "text/plain"]))))
        if draw(st.integers(0, 4)) == 0:
            headers.append((draw(HEADER_NAMES), "binary"))
        headers = draw(st.permutations(headers))
        pieces = st.sampled_from([b"\r\n", b"--", boundary, delimiter])
        data = b"".join(draw(st.lists(st.binary(max_size=6) | pieces, max_size=6)))
        head = "".join(f"{key}: {value}\r\n" for key, value in headers).encode("utf-8")
        parts.append(head + b"\r\n" + data)
        if len(parts) == 1 and delimiter not in data:
            names = [key.lower() for key, _ in headers]
            usual = (
                name == "file"
                and bool(filename)  # "": a browser's form with no file chosen
                and set(names) <= {"content-disposition", "content-type"}
                and names.count("content-disposition") == 1
                and names.count("content-type") <= 1
            )
    preamble = draw(st.sampled_from([b"", b"", b"", b"note\r\n"]))
    epilogue = draw(st.sampled_from([b"\r\n", b"", b"\r\nbye"]))
    framed = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    content = preamble + framed + b"--" + boundary + b"--" + epilogue
    if usual is not None:
        usual = usual and len(parts) == 1 and not preamble
    quoted = b'"' + boundary + b'"' if draw(st.booleans()) else boundary
    return content, b"multipart/form-data; boundary=" + quoted, usual


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(bodies())
def test_agrees_with_the_full_parser(case: tuple[bytes, bytes, bool | None]) -> None:
    content, content_type, usual = case
    found = multipart.single_file(content, content_type, b"file")
    if found is not None:
        assert full_parse(content, content_type) == [("file", found)]
    if usual is not None:
        assert (found is not None) == usual, "the short cut takes the usual shape, only it"


# Header text with what the plain patterns must not misread: quotes, escapes,
# separators, spaces, capitals, latin-1.
HEADER_TEXT = st.text(" ;=\"\\'*aZ09-_./:é", max_size=12)


@st.composite
def header_values(draw) -> bytes:
    """A Content-Type or Content-Disposition value, often of the plain shapes."""
    text = draw(HEADER_TEXT)
    value = draw(
        st.sampled_from(
            [
                "multipart/form-data; boundary={}",
                'form-data; name="{}"; filename="d.png"',
                'form-data; name="file"; filename="{}"',
                "{}",
                "Multipart/Form-Data; boundary={}",
                'form-data; name="file"{}',
            ]
        )
    )
    return value.format(text).encode("latin-1")


@settings(max_examples=500, deadline=None, derandomize=True)
@given(header_values())
def test_plain_headers_are_read_as_the_general_parser_reads_them(value: bytes) -> None:
    kind, options = parse_options_header(value)
    boundary = options.get(b"boundary") if kind == b"multipart/form-data" else None
    if options.keys() != {b"boundary"} or len(boundary or b"") > multipart.MAX_BOUNDARY:
        boundary = None  # another parameter (a charset), or too long: the full parser's
    assert multipart.boundary_of(value) == (boundary or None)
    for field in (b"file", b"d.png"):
        named = kind == b"form-data" and options.get(b"name") == field
        # A file with a name; an empty one (no file chosen) is for the full parser.
        assert multipart.is_file_field(value, field) == (named and bool(options.get(b"filename")))


def test_what_clients_send_takes_the_plain_patterns(monkeypatch) -> None:
    monkeypatch.setattr(multipart, "parse_options_header", None)  # any use fails
    for boundary in (b"------------------------d74496d66958873e", b"----WebKitFormBoundaryx7b"):
        assert multipart.boundary_of(b"multipart/form-data; boundary=" + boundary) == boundary
    assert multipart.is_file_field(b'form-data; name="file"; filename="7.png"', b"file")


@pytest.fixture
def short_cuts(monkeypatch) -> list[bool]:
    """Whether each request's body was read by the short cut (True) or left (False)."""
    taken: list[bool] = []
    single_file = multipart.single_file

    def spy(*args):
        found = single_file(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(multipart, "single_file", spy)
    return taken


def test_short_cut_answers_as_fastapi_does(client: TestClient, short_cuts: list[bool]) -> None:
    files = {"file": ("7.png", png_bytes(stroke_digit()), "image/png")}
    for query in ("", "include_input=true"):
        short = client.post(f"/predict?{query}", files=files)
        # "1" and "on" mean true to FastAPI; the short cut leaves such queries to it.
        full = client.post(
            f"/predict?{query.replace('true', 'on') or 'include_input=0'}", files=files
        )
        assert short.status_code == full.status_code == 200
        assert short.content == full.content
        assert short.headers["content-type"] == full.headers["content-type"]
    assert short_cuts == [True, True]  # the two full-path requests never reached it


@pytest.mark.parametrize(
    ("files", "status", "short_cut"),
    [
        ({"file": ("empty.png", b"", "image/png")}, 400, True),
        ({"file": ("a.txt", b"just some text", "text/plain")}, 415, True),
        ({"image": ("7.png", b"x", "image/png")}, 422, False),  # not the field it reads
    ],
)
def test_errors_are_the_same_either_way(
    client: TestClient, short_cuts: list[bool], files: dict, status: int, short_cut: bool
) -> None:
    short = client.post("/predict", files=files)
    full = client.post("/predict", files=files, data={"note": "a second part"})
    assert short.status_code == full.status_code == status
    assert short.json() == full.json()
    # The first went the short cut's way (or was left by it); a second part never is.
    assert short_cuts == [short_cut, False]


def test_the_first_content_type_is_read_as_starlette_reads_it(
    client: TestClient, short_cuts: list[bool]
) -> None:
    """Two Content-Type headers: the first decides, on either path (a multipart body
    under a text/plain one is no form)."""
    content = body(part(png_bytes(stroke_digit()), FILE))
    for query in ("", "?include_input=0"):  # the short cut's way, then the full parser's
        response = client.post(
            f"/predict{query}",
            content=content,
            headers=[("content-type", "text/plain"), ("content-type", CONTENT_TYPE.decode())],
        )
        assert response.status_code == 422, query
    assert short_cuts == []


def test_big_or_unsized_bodies_go_to_the_full_parser(
    client: TestClient, short_cuts: list[bool]
) -> None:
    big = {"file": ("big.png", bytes(SHORT_CUT_MAX_BYTES), "image/png")}
    assert client.post("/predict", files=big).status_code == 415
    request = httpx.Request(
        "POST",
        "http://x/predict",
        files={"file": ("7.png", png_bytes(stroke_digit()), "image/png")},
    )
    chunked = client.post(
        "/predict",
        content=iter([request.read()]),  # no Content-Length: sent chunked
        headers={"Content-Type": request.headers["content-type"]},
    )
    assert chunked.status_code == 200 and chunked.json()["digit"] == 7
    assert short_cuts == []


@pytest.mark.parametrize("query", [b"", b"include_input=1"])  # short cut, full parser
def test_a_client_gone_mid_body_gets_400_either_way(client: TestClient, query: bytes) -> None:
    request = httpx.Request(
        "POST",
        "http://x/predict",
        files={"file": ("7.png", png_bytes(stroke_digit()), "image/png")},
    )
    content = request.read()
    headers = [
        (b"content-type", request.headers["content-type"].encode()),
        (b"content-length", str(len(content)).encode()),
    ]
    sent = gone_mid_body(client.app, http_scope("POST", "/predict", headers, query), content[:100])
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400]
