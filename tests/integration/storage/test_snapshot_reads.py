"""SQLite snapshot reads: each call a fresh snapshot, outside the write lock, on a connection kept open for the next."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.snapshots import SnapshotReads, snapshot_engine


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Engine, SnapshotReads]]:
    url = f"sqlite:///{tmp_path / 'snap.db'}"
    writer = make_engine(url)
    with writer.begin() as db:
        db.execute(text("CREATE TABLE t (n INTEGER)"))
        db.execute(text("INSERT INTO t VALUES (1)"))
    engine = snapshot_engine(url)
    assert engine is not None
    reads = SnapshotReads(engine)
    yield writer, reads
    reads.close()
    engine.dispose()
    writer.dispose()


def _count(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM t")).scalar_one())


def _add_row(writer: Engine) -> None:
    with writer.begin() as db:
        db.execute(text("INSERT INTO t VALUES (2)"))


def test_each_read_sees_what_was_committed_before_it_on_the_connection_the_last_one_left(
    database: tuple[Engine, SnapshotReads],
) -> None:
    writer, reads = database
    with reads() as first:
        assert _count(first) == 1
    _add_row(writer)
    with reads() as second:
        assert second is first and not second.closed  # kept open, not taken from the pool again
        assert _count(second) == 2  # a new snapshot all the same


def test_a_read_keeps_its_snapshot_while_a_writer_commits_and_never_holds_the_write_lock(
    database: tuple[Engine, SnapshotReads],
) -> None:
    writer, reads = database
    with reads() as db:
        assert _count(db) == 1
        _add_row(writer)  # would wait for the lock (30 s, then fail) if the read held it
        assert _count(db) == 1
        with pytest.raises(OperationalError, match="attempt to write a readonly database"):
            db.execute(text("INSERT INTO t VALUES (3)"))


def test_a_read_that_fails_closes_its_connection_and_the_next_read_gets_a_fresh_one(
    database: tuple[Engine, SnapshotReads],
) -> None:
    _writer, reads = database
    with pytest.raises(ZeroDivisionError), reads() as db:
        failed = db
        _ = 1 / 0
    assert failed.closed
    with reads() as db:
        assert db is not failed and _count(db) == 1


def test_reads_at_the_same_time_each_get_a_connection_and_close_closes_those_kept(
    database: tuple[Engine, SnapshotReads],
) -> None:
    _writer, reads = database
    inside = threading.Barrier(2)
    seen: list[Connection] = []

    def read() -> None:
        with reads() as db:
            seen.append(db)
            inside.wait(timeout=10)  # both reads are open at once
            assert _count(db) == 1

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 2 and seen[0] is not seen[1]
    reads.close()
    assert all(db.closed for db in seen)
