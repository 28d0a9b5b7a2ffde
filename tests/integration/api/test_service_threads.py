"""``NUDGE_API_THREADS``: how many service calls one API worker runs at once in threads (PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import anyio.from_thread
import pytest
from sqlalchemy import make_url

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.entrypoints.api.app import LOCAL_DATABASE_THREADS, database_is_local, service_threads
from nudge_engine.entrypoints.api.dependencies import ApiServices
from tests.e2e.api.kit import Clock, FakeGuardrails, make_container


def _services(database_url: str, tmp_path: Path, threads: int | None) -> tuple[Container, ApiServices]:
    container = make_container(database_url, tmp_path, Clock())
    if threads is not None:
        container = Container(container.settings.model_copy(update={"api_threads": threads}), clock=container.clock)
    services: ApiServices = create_app(container, guardrails=FakeGuardrails()).state.services
    return container, services


def _most_at_once(services: ApiServices, calls: int) -> int:
    """Start ``calls`` blocking service calls together; how many ran at the same time at most."""
    lock, running, most = threading.Lock(), [0], [0]

    def call() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)  # long enough for every call the limit lets in to be running together
        with lock:
            running[0] -= 1

    async def all_of_them() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(calls):
                group.start_soon(services.run, call)

    with anyio.from_thread.start_blocking_portal() as portal:  # a loop of its own, whatever runs in this thread
        portal.call(all_of_them)
    return most[0]


@pytest.mark.parametrize("threads", [1, 3])
def test_service_calls_run_at_most_the_configured_threads_at_once(
    database_url: str, tmp_path: Path, threads: int
) -> None:
    container, services = _services(database_url, tmp_path, threads)
    try:
        if services.inline:
            pytest.skip("SQLite runs service calls on the event loop, one at a time")
        assert _most_at_once(services, 8) == threads
    finally:
        container.dispose()


def test_without_the_setting_a_worker_runs_two_calls_at_once_on_a_database_on_this_machine(
    database_url: str, tmp_path: Path
) -> None:
    container, services = _services(database_url, tmp_path, None)
    try:
        if services.inline:
            pytest.skip("SQLite runs service calls on the event loop, one at a time")
        assert database_is_local(container.engine.url)  # the tests' server listens on 127.0.0.1
        assert _most_at_once(services, 8) == LOCAL_DATABASE_THREADS
    finally:
        container.dispose()


@pytest.mark.parametrize(("url", "local"), [
    ("postgresql+psycopg://nudge@127.0.0.1:5432/nudge", True),
    ("postgresql+psycopg://nudge@localhost/nudge", True),
    ("postgresql+psycopg://nudge@/nudge?host=/run/postgresql", True),
    ("postgresql+psycopg://nudge@/nudge", True),
    ("postgresql+psycopg://nudge@db.internal:5432/nudge", False),
    ("postgresql+psycopg://nudge@10.0.3.7/nudge", False),
])
def test_a_database_across_the_network_gets_as_many_threads_as_the_pool_keeps_connections(
    url: str, local: bool, tmp_path: Path
) -> None:
    container = make_container(url, tmp_path, Clock())  # nothing connects: the engine only knows the URL
    try:
        assert database_is_local(make_url(url)) is local
        assert service_threads(container) == (LOCAL_DATABASE_THREADS if local else container.engine.pool.size())  # type: ignore[attr-defined]
        assert not local or service_threads(container) < container.engine.pool.size()  # type: ignore[attr-defined]
    finally:
        container.dispose()


def test_a_thread_count_outside_one_to_sixty_four_is_refused(database_url: str, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from nudge_engine.config import Settings

    for wrong in ("0", "65", "many"):
        with pytest.raises(ValidationError, match="api_threads"):
            Settings(database_url=database_url, var_dir=tmp_path, api_threads=wrong)
