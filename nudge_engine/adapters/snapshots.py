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

from typing import Any

from sqlalchemy import Engine, create_engine, event
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
