"""Engine construction for SQLite (embedded default) and PostgreSQL (scale-out).

Engines hide bound parameters from error messages and logs: SQL errors never carry patient data.

SQLite transactions begin with ``BEGIN IMMEDIATE`` (the database's one write lock, taken up front, so
a unit of work that reads and then writes never fails on a snapshot made stale by another writer).
Before that they queue in a :class:`WriterQueue`: SQLite's own wait for a busy lock (the busy timeout)
polls with growing sleeps (1, 2, 5, 10 ... 100 ms), so a writer that finds the lock taken may sleep
well past its release while the holder's process takes it again and again; under steady load from
several ``serve`` workers that starves whole processes. The queue hands the lock on within a fraction
of a millisecond instead. Their commits never copy the log into the database file: that runs beside them
(:mod:`nudge_engine.adapters.wal_checkpointer`).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url

from nudge_engine.adapters import json_codec
from nudge_engine.adapters.liveness import check_liveness
from nudge_engine.adapters.wal_checkpointer import CHECKPOINTER, WalCheckpointer

BUSY_TIMEOUT_S = 30.0


class WriterQueue:
    """Orders the SQLite write transactions of every process that uses this engine's database file.

    A transaction first takes a lock shared by the threads of its process, then an exclusive
    ``flock`` on ``<database>.writers`` (created beside the database, mode 0600), then ``BEGIN
    IMMEDIATE``; it lets both go when it commits or rolls back. The file lock is polled every
    0.05 to 0.5 ms, so a waiting process takes it up moments after its release (the releasing
    process needs longer than that to come back for it). Waiting longer than the busy timeout
    raises SQLite's own "database is locked". SQLite's lock still keeps writers apart, including
    processes that do not use this queue; the queue only orders them.
    """

    def __init__(self, path: Path, *, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._timeout = timeout
        self._threads = threading.Lock()
        self._fd = -1
        self._pid: int | None = None
        self._holder: int | None = None  # id() of the DBAPI connection in a transaction

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked child gets its own open file (flock is per open file)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, connection: object) -> None:
        deadline = time.monotonic() + self._timeout
        if not self._threads.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            fd, pause = self._file(), 0.00005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError("database is locked") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.0005)
        except BaseException:
            self._threads.release()
            raise
        self._holder = id(connection)

    def release(self, connection: object) -> None:
        """Let go, if ``connection`` holds the queue (a second call, or another connection's, does nothing)."""
        if self._holder != id(connection):
            return
        self._holder = None
        fcntl.flock(self._file(), fcntl.LOCK_UN)
        self._threads.release()


def _driver(dbapi_connection: Any) -> Any:
    return getattr(dbapi_connection, "driver_connection", dbapi_connection)


class QueuedSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite whose transactions begin with ``BEGIN IMMEDIATE``, queued in :attr:`writer_queue` when set."""

    supports_statement_cache = True
    writer_queue: WriterQueue | None = None
    database_file: Path | None = None  # on disk: its log is checkpointed after commits, by ``checkpointer``
    checkpointer: WalCheckpointer = CHECKPOINTER

    def do_begin(self, dbapi_connection: Any) -> None:
        driver = _driver(dbapi_connection)
        queue = self.writer_queue
        if queue is not None:
            queue.acquire(driver)
        try:
            driver.execute("BEGIN IMMEDIATE")
        except BaseException:
            if queue is not None:
                queue.release(driver)
            raise

    def do_commit(self, dbapi_connection: Any) -> None:
        try:
            super().do_commit(dbapi_connection)  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
        finally:
            if self.writer_queue is not None:
                self.writer_queue.release(_driver(dbapi_connection))
        if self.database_file is not None:
            self.checkpointer.committed(self.database_file)

    def do_rollback(self, dbapi_connection: Any) -> None:
        try:
            super().do_rollback(dbapi_connection)  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
        finally:
            if self.writer_queue is not None:
                self.writer_queue.release(_driver(dbapi_connection))


registry.register("sqlite.queued", __name__, "QueuedSQLiteDialect")


def writers_take_turns(dialect: Dialect) -> bool:
    """Whether every write transaction holds the database's one write lock from its start (SQLite: each begins
    with ``BEGIN IMMEDIATE``, see :class:`QueuedSQLiteDialect`), so that writers need no row or advisory lock
    to take turns. PostgreSQL's writers run at once and lock what they must."""
    return dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys, a busy timeout and a writer queue."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        on_disk = bool(parsed.database) and parsed.database != ":memory:"
        if on_disk:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed.set(drivername="sqlite+queued"), echo=echo, hide_parameters=True,
            connect_args={"timeout": BUSY_TIMEOUT_S},
            json_serializer=json_codec.dumps, json_deserializer=json_codec.loads,
        )
        if on_disk and isinstance(engine.dialect, QueuedSQLiteDialect):
            engine.dialect.writer_queue = WriterQueue(Path(f"{parsed.database}.writers"))
            engine.dialect.database_file = Path(str(parsed.database))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (QueuedSQLiteDialect.do_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            if on_disk:  # checkpoints run on this process's checkpointer thread, never inside a COMMIT
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    engine = create_engine(
        url, echo=echo, hide_parameters=True, pool_size=10, max_overflow=20,
        json_serializer=json_codec.dumps, json_deserializer=json_codec.loads,
    )
    check_liveness(engine)  # pool_pre_ping's safety without its round trip per checkout
    return engine
