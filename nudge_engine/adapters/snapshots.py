"""Read-only snapshot sessions on SQLite, for work done outside the database's one write lock.

Every SQLite unit of work begins with ``BEGIN IMMEDIATE``: it takes the write lock up front (see
:mod:`nudge_engine.adapters.database`). A build worker reads a shard and computes its decisions for
a second or more; inside the write lock that would keep every other build worker (and the API's
writes) waiting the whole time. A snapshot session begins a *deferred* transaction instead: in WAL
mode its first read fixes a consistent snapshot that concurrent writers never disturb, and
``PRAGMA query_only`` turns any write through it into an error.

PostgreSQL needs none of this (readers never wait for writers), so there is no snapshot engine
for it: :func:`snapshot_engine` answers None.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url

from nudge_engine.adapters import json_codec
from nudge_engine.adapters.database import BUSY_TIMEOUT_S


class SnapshotSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite whose transactions begin deferred: a read snapshot, never the write lock."""

    supports_statement_cache = True

    def do_begin(self, dbapi_connection: Any) -> None:
        getattr(dbapi_connection, "driver_connection", dbapi_connection).execute("BEGIN")


registry.register("sqlite.snapshot", __name__, "SnapshotSQLiteDialect")


def snapshot_engine(url: str) -> Engine | None:
    """A read-only engine on the same SQLite file (None for other databases, or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    engine = create_engine(
        parsed.set(drivername="sqlite+snapshot"), hide_parameters=True, connect_args={"timeout": BUSY_TIMEOUT_S},
        json_serializer=json_codec.dumps, json_deserializer=json_codec.loads,
    )

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (SnapshotSQLiteDialect.do_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    return engine


class SnapshotReads:
    """Read-only transactions on a snapshot, each on a plain connection kept open for the next one.

    Calling it gives a context manager: a connection in a deferred transaction (``BEGIN``), committed
    on the way out. Taking a connection from the engine's pool and giving it back costs as much as
    the serve's whole read transaction, so an ended transaction leaves its connection here, open and
    idle (no transaction, no snapshot held: WAL checkpoints are not kept waiting), for the next call
    on any thread. A connection whose block raised is closed instead. :meth:`close` closes those kept.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._idle: list[Connection] = []  # append and pop are atomic: no lock needed between threads

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self.engine.connect()
        try:
            with connection.begin():
                yield connection
        except BaseException:
            connection.close()
            raise
        self._idle.append(connection)

    def close(self) -> None:
        """Close the connections kept idle (those in use are closed by their block's end as usual)."""
        while self._idle:
            self._idle.pop().close()
