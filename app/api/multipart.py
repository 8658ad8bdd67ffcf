"""The one multipart body /predict reads without the form parser: a single file.

curl ``-F file=@digit.png``, httpx ``files=``, a browser's ``FormData`` and the
benchmark all send the same shape: one part, named ``file``, with a filename,
a Content-Disposition and at most a Content-Type header. For that shape a slice
of the body is the file, found with a few ``bytes.find`` calls, where the full
form parser (python-multipart driven by Starlette and FastAPI) costs more than
reading the digit does. Anything else, from a second part to a header we do not
expect, gets ``None`` here and goes to the full parser, which decides what it
means (and which error it is): also whatever that parser may refuse or read
otherwise, though a lenient reading would find the file (a Content-Type with a
charset, by which it decodes the field's name; a boundary over RFC 2046's 70
characters; a part header repeated, over MAX_HEADER_LINE bytes, or holding a
bare CR).

Header values are parsed by python-multipart's own ``parse_options_header``, as
the full parser does, so both agree on boundaries, names and filenames; the
plain forms every client above sends (an unquoted boundary; a quoted name and
filename) are matched by a pattern first, at a third of its cost, with the
same answer (tests hold the two together).
"""

from __future__ import annotations

import re

from python_multipart.multipart import parse_options_header

_PART_HEADERS = frozenset({b"content-disposition", b"content-type"})
MAX_BOUNDARY = 70  # RFC 2046's longest boundary
MAX_HEADER_LINE = 1024  # bytes: longer part headers (a 4,000-byte filename) are not usual
_PLAIN_CONTENT_TYPE = re.compile(rb"multipart/form-data; boundary=([0-9A-Za-z'()+_,./:=?-]+)")
_PLAIN_DISPOSITION = re.compile(rb'form-data; name="([^"\\;]*)"; filename="[^"\\;]+"')


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type that has no other
    parameter, else None."""
    plain = _PLAIN_CONTENT_TYPE.fullmatch(content_type)
    if plain is not None:
        boundary = plain[1]
    else:
        kind, options = parse_options_header(content_type)
        if kind != b"multipart/form-data" or options.keys() != {b"boundary"}:
            return None
        boundary = options[b"boundary"]
    return boundary if 0 < len(boundary) <= MAX_BOUNDARY else None


def is_file_field(disposition: bytes, field: bytes) -> bool:
    """Whether a part's Content-Disposition names a file sent as the form field ``field``,
    with a filename (an empty one is what a browser's form sends with no file chosen:
    the full parser tells that from an empty file)."""
    plain = _PLAIN_DISPOSITION.fullmatch(disposition)
    if plain is not None:
        return plain[1] == field
    kind, options = parse_options_header(disposition)
    return kind == b"form-data" and options.get(b"name") == field and bool(options.get(b"filename"))


def single_file(body: bytes, content_type: bytes, field: bytes) -> bytes | None:
    """The file in ``body`` if it is exactly one file part named ``field``, else None.

    ``content_type`` is the request's Content-Type header (it carries the boundary).
    """
    boundary = boundary_of(content_type)
    if boundary is None:
        return None
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening):  # a preamble: unusual, for the full parser
        return None
    headers_end = body.find(b"\r\n\r\n", len(opening))
    if headers_end < 0:
        return None
    data_start = headers_end + 4
    delimiter = b"\r\n--" + boundary
    data_end = body.find(delimiter, data_start)
    after = data_end + len(delimiter)
    if data_end < 0 or body[after : after + 2] != b"--":  # a second part, or none closed
        return None
    disposition, seen = None, set()
    for line in body[len(opening) : headers_end].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        name = name.lower()  # no space before the colon, as the full parser requires
        if not colon or name not in _PART_HEADERS or name in seen:
            return None
        if len(line) > MAX_HEADER_LINE or b"\r" in line:
            return None
        seen.add(name)
        if name == b"content-disposition":
            disposition = value.strip()
    if disposition is None or not is_file_field(disposition, field):
        return None
    return body[data_start:data_end]
