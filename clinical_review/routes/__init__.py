"""The review package's routers: the JSON API (``/v1/review``), the pages and their static files (``/review``).

``router`` bundles them; the API's router table mounts it with one line.
"""

from fastapi import APIRouter

from clinical_review.routes import api, pages, static

router = APIRouter()
router.include_router(api.router)
router.include_router(static.router)
router.include_router(pages.router)

__all__ = ["router"]
