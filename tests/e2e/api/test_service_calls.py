"""Where the hot routes' service calls run (``ApiServices.run``): the event loop on SQLite, a worker
thread on PostgreSQL (see ``entrypoints/api/dependencies.py``)."""

from __future__ import annotations

import threading

import anyio
from fastapi import FastAPI

from nudge_engine.entrypoints.api.dependencies import ApiServices


async def _thread_of_call_and_loop(services: ApiServices) -> tuple[int, int]:
    return await services.run(threading.get_ident), threading.get_ident()


def test_service_calls_run_on_the_event_loop_on_sqlite_and_in_a_worker_thread_on_postgresql(
    app: FastAPI, database_url: str
) -> None:
    services: ApiServices = app.state.services
    call_thread, loop_thread = anyio.run(_thread_of_call_and_loop, services)
    on_sqlite = database_url.startswith("sqlite")
    assert services.inline is on_sqlite
    assert (call_thread == loop_thread) is on_sqlite
