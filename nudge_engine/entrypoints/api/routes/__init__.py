"""API routers, mounted by :mod:`nudge_engine.entrypoints.api.app`."""
