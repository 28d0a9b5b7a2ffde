"""SQLite's write-ahead log reaches the database file off the committing thread (``adapters.wal_checkpointer``).

A commit only appends to the log and tells the process's checkpointer; the checkpointer copies the log
into the database file shortly after. What sits in the database file itself is read from a copy of that
file alone, without its log.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine, text

from nudge_engine.adapters.database import QueuedSQLiteDialect, make_engine
from nudge_engine.adapters.wal_checkpointer import WalCheckpointer, checkpoint

ROWS = 1_500  # rows of a page each: more than the 1,000 pages at which SQLite's own checkpoint runs in COMMIT


class Recorder(WalCheckpointer):
    def __init__(self) -> None:
        super().__init__()
        self.told: list[Path] = []

    def committed(self, path: Path) -> None:
        self.told.append(path)


def _engine(tmp_path: Path, checkpointer: WalCheckpointer) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    assert isinstance(engine.dialect, QueuedSQLiteDialect)
    engine.dialect.checkpointer = checkpointer
    return engine


def _write_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pages (n INTEGER PRIMARY KEY, body BLOB)"))
        conn.execute(text("INSERT INTO pages (n, body) VALUES (:n, randomblob(4000))"),
                     [{"n": n} for n in range(ROWS)])


def _rows_in_database_file(database: Path, tmp_path: Path) -> int:
    """The rows of ``pages`` in the database file, without what is still only in its log."""
    copy = tmp_path / "file-only.db"
    shutil.copyfile(database, copy)
    conn = sqlite3.connect(copy)
    try:
        found = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pages'").fetchone()[0]
        return int(conn.execute("SELECT count(*) FROM pages").fetchone()[0]) if found else 0
    finally:
        conn.close()
        copy.unlink()


def test_a_commit_appends_to_the_log_and_leaves_the_copy_to_the_checkpointer(tmp_path: Path) -> None:
    recorder = Recorder()
    engine = _engine(tmp_path, recorder)
    _write_pages(engine)
    assert _rows_in_database_file(tmp_path / "w.db", tmp_path) == 0  # SQLite's own checkpoint would have copied them
    assert recorder.told == [tmp_path / "w.db"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pages")).scalar() == ROWS  # readers see the log
    engine.dispose()


def test_the_checkpointer_copies_committed_pages_into_the_database_file(tmp_path: Path) -> None:
    engine = _engine(tmp_path, WalCheckpointer(pause=0.01))
    _write_pages(engine)
    deadline = time.monotonic() + 30
    while _rows_in_database_file(tmp_path / "w.db", tmp_path) < ROWS:  # the engine's connections stay open
        assert time.monotonic() < deadline, "the checkpointer never copied the log"
        time.sleep(0.05)
    engine.dispose()


def test_a_database_removed_before_its_checkpoint_is_not_made_again(tmp_path: Path) -> None:
    gone = tmp_path / "gone.db"
    assert checkpoint(gone) is None
    assert not gone.exists()


def test_a_checkpoint_reports_the_frames_it_copied(tmp_path: Path) -> None:
    engine = _engine(tmp_path, Recorder())
    _write_pages(engine)
    busy, frames, copied = checkpoint(tmp_path / "w.db") or (None, None, None)
    assert busy == 0
    assert frames is not None and frames > ROWS
    assert copied == frames
    assert _rows_in_database_file(tmp_path / "w.db", tmp_path) == ROWS
    engine.dispose()
