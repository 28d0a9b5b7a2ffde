"""A pooled PostgreSQL connection is pinged at checkout only when it may be dead: back in the pool for
longer than the bypass window, or with input from the server waiting (``adapters.liveness``); a
connection the server ended is replaced, not handed out."""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.liveness import PING_BYPASS_S, check_liveness, has_input
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pinged(postgres_server: PostgresServer, clock: Clock) -> Iterator[tuple[Engine, list[Any]]]:
    """An engine whose pool is checked by :func:`check_liveness` on ``clock``, and the connections it pinged."""
    engine = create_engine(postgres_server.admin_url, pool_size=1, max_overflow=0)
    check_liveness(engine, clock=clock)
    pings: list[Any] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return bool(ping(dbapi_connection))

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    yield engine, pings
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as db:
        return int(db.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _end_pooled_session(engine: Engine, server: PostgresServer) -> int:
    """Use ``engine``'s one connection, have the server end its session while it sits in the pool, and wait
    (bounded: the server sends its notice at once) until its socket shows it. Returns the ended backend."""
    with engine.connect() as db:
        pid = int(db.execute(text("SELECT pg_backend_pid()")).scalar_one())
        socket = int(db.connection.driver_connection.pgconn.socket)  # type: ignore[union-attr]
    admin = make_engine(server.admin_url)
    try:
        with admin.connect() as db:
            assert db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    assert poller.poll(10_000), "the server's notice never arrived"
    return pid


def test_a_connection_back_within_the_window_is_handed_out_without_a_ping(
    pinged: tuple[Engine, list[Any]], clock: Clock
) -> None:
    engine, pings = pinged
    first = _backend_pid(engine)
    clock.now += PING_BYPASS_S / 2
    assert _backend_pid(engine) == first
    assert pings == []


def test_a_connection_idle_past_the_window_is_pinged_and_kept(pinged: tuple[Engine, list[Any]], clock: Clock) -> None:
    engine, pings = pinged
    first = _backend_pid(engine)
    clock.now += PING_BYPASS_S * 2
    assert _backend_pid(engine) == first
    assert len(pings) == 1


def test_a_connection_the_server_ended_is_replaced_inside_the_window(
    pinged: tuple[Engine, list[Any]], postgres_server: PostgresServer
) -> None:
    engine, pings = pinged
    ended = _end_pooled_session(engine, postgres_server)
    assert _backend_pid(engine) != ended
    assert len(pings) == 1  # the ended one, found out by its ping; the new connection is fresh


def test_an_idle_connection_with_nothing_sent_has_no_input(postgres_server: PostgresServer) -> None:
    engine = make_engine(postgres_server.admin_url)
    try:
        raw = engine.raw_connection()
        try:
            assert has_input(raw.driver_connection) is False
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_a_connection_without_a_pollable_socket_must_be_pinged() -> None:
    assert has_input(object()) is True


def test_the_engines_postgres_connections_survive_a_session_the_server_ended(postgres_server: PostgresServer) -> None:
    engine = make_engine(postgres_server.admin_url)
    try:
        ended = _end_pooled_session(engine, postgres_server)
        assert _backend_pid(engine) != ended
    finally:
        engine.dispose()


def test_a_connection_the_driver_closed_is_replaced_without_a_ping(pinged: tuple[Engine, list[Any]]) -> None:
    engine, pings = pinged
    with engine.connect() as db:
        first = int(db.execute(text("SELECT pg_backend_pid()")).scalar_one())
        driver = db.connection.driver_connection
    driver.close()  # type: ignore[union-attr]  # in the pool: as a failed call would leave it
    assert _backend_pid(engine) != first
    assert pings == []
