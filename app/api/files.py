"""The page and its static files, with JSON errors like every other answer.

Starlette's ``FileResponse`` serves byte ranges (``Range: bytes=0-99``), but answers
a malformed range with a plain-text 400 and one past the file's end with an empty
416, inside the response, where no exception handler sees them. ``File`` checks the
range first, as Starlette would, and answers both as JSON ``{"detail": ...}``; a
good range, or none, is Starlette's to serve.
"""

from __future__ import annotations

import os

from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from starlette.staticfiles import NotModifiedResponse
from starlette.types import Receive, Scope, Send


class File(FileResponse):
    """A ``FileResponse`` whose range errors are JSON (module docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._range_refusal(scope)
        await (refusal or super().__call__)(scope, receive, send)

    def _range_refusal(self, scope: Scope) -> JSONResponse | None:
        """The answer to a Range header Starlette would refuse, or None."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return None
        headers = Headers(scope=scope)
        http_range = headers.get("range")
        if http_range is None or self.status_code != 200:
            return None
        if self.stat_result is None:
            try:
                self.stat_result = os.stat(self.path)
            except OSError:
                return None  # Starlette says what is wrong
            self.set_stat_headers(self.stat_result)
        if_range = headers.get("if-range")
        if if_range is not None and not self._should_use_range(if_range):
            return None  # the file changed: Starlette sends it whole
        size = self.stat_result.st_size
        try:
            self._parse_range_header(http_range, size)
        except MalformedRangeHeader as error:
            reason = error.content.removeprefix("Range header: ").rstrip(".")
            return JSONResponse(
                {"detail": f"Bad Range header: {reason[:1].lower()}{reason[1:]}."}, 400
            )
        except RangeNotSatisfiable:
            return JSONResponse(
                {"detail": f"The Range asks for bytes past the end of the file ({size} bytes)."},
                416,
                headers={"Content-Range": f"bytes */{size}"},
            )
        return None


class Files(StaticFiles):
    """``StaticFiles`` answering with ``File``."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> FileResponse | NotModifiedResponse:
        response = File(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
