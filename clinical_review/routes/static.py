"""The pages' own CSS and JavaScript, served from the package (no CDN, a fixed allow-list of files)."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import Response

from clinical_review.wiring import PACKAGE

router = APIRouter(prefix="/review/static", include_in_schema=False)
FILES = {"review.css": "text/css; charset=utf-8", "review.js": "text/javascript; charset=utf-8"}


@cache
def _read(name: str) -> bytes:
    return (PACKAGE / "static" / name).read_bytes()


@router.get("/{name}")
def static_file(name: str) -> Response:
    media = FILES.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(_read(name), media_type=media, headers={"Cache-Control": "max-age=300",
                                                            "X-Content-Type-Options": "nosniff"})
