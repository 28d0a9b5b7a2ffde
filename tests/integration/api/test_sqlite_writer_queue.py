"""SQLite write transactions queue for the database's one write lock (``adapters.database.WriterQueue``).

``serve`` workers on SQLite run their transactions on the event loop (``ApiServices.run``); the queue
hands the write lock from one transaction, thread or process to the next as soon as it is let go.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from nudge_engine.adapters.database import QueuedSQLiteDialect, WriterQueue, make_engine
from nudge_engine.adapters.migrations import upgrade

WAIT = 0.3  # how long a blocked writer is given to (wrongly) get in


def test_a_second_writer_begins_only_after_the_first_commits(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(engine)
    began, order = threading.Event(), []

    def second() -> None:
        with engine.begin() as conn:
            began.set()
            order.append(conn.execute(text("SELECT seq FROM audit_chain_head")).scalar())

    with engine.begin() as first:
        first.execute(text("INSERT INTO audit_chain_head (id, seq, hash, updated_at) "
                           "VALUES (1, 7, 'h', '2026-01-01 00:00:00.000000')"))
        worker = threading.Thread(target=second)
        worker.start()
        assert not began.wait(WAIT)
    worker.join(10)
    assert order == [7]  # it saw the first transaction's committed row
    engine.dispose()


def test_the_queue_is_let_go_after_a_rollback_too(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.rollback()
    with engine.begin() as conn:  # would wait for the busy timeout if the rollback had kept the queue
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()


def test_an_sqlite_file_engine_queues_its_writers_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    dialect = engine.dialect
    assert isinstance(dialect, QueuedSQLiteDialect)
    assert dialect.writer_queue is not None
    assert dialect.writer_queue.path == tmp_path / "q.db.writers"
    assert dialect.name == "sqlite"
    engine.dispose()


def test_a_writer_waiting_past_the_timeout_gets_database_is_locked(tmp_path: Path) -> None:
    queue = WriterQueue(tmp_path / "x.writers", timeout=0.2)
    holder, other = object(), object()
    queue.acquire(holder)
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            queue.acquire(other)
        except sqlite3.OperationalError as exc:
            failed.append(exc)

    worker = threading.Thread(target=wait)
    worker.start()
    worker.join(10)
    assert [str(e) for e in failed] == ["database is locked"]
    queue.release(holder)
    queue.acquire(other)  # free again
    queue.release(other)


def test_only_the_holder_lets_the_queue_go(tmp_path: Path) -> None:
    queue = WriterQueue(tmp_path / "x.writers", timeout=0.2)
    holder, stranger = object(), object()
    queue.acquire(holder)
    queue.release(stranger)  # e.g. the pool's reset of another connection: nothing happens
    with pytest.raises(sqlite3.OperationalError):
        queue.acquire(stranger)
    queue.release(holder)
    queue.release(holder)  # a second release (commit, then the pool's rollback on return) is harmless
    queue.acquire(stranger)
    queue.release(stranger)
