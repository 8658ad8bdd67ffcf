"""GET /: the draw-a-digit page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from app.api.files import File

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"

# The page loads nothing from another host, and the browser holds it to that.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> File:
    return File(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
