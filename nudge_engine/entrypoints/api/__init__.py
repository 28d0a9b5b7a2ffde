"""The HTTP API (FastAPI): ``create_app(container)``; ``create_app_from_env()`` for uvicorn's factory mode."""

from nudge_engine.entrypoints.api.app import ROUTERS, create_app, create_app_from_env

__all__ = ["ROUTERS", "create_app", "create_app_from_env"]
