"""SQLite write-ahead-log checkpoints off the committing thread.

By default SQLite checkpoints inside ``COMMIT``: the commit that takes the log past 1,000 pages copies
the whole log into the database file (and syncs it) before it returns. For the API that is a serve
every few hundred whose commit takes 10-20 ms instead of 0.1, while it still holds the writers' turn
(:class:`~nudge_engine.adapters.database.WriterQueue`), so every writer of every process waits behind
it: the tail of both endpoints' latency. The engine's connections therefore turn the automatic
checkpoint off (``PRAGMA wal_autocheckpoint=0``) and tell this process's :class:`WalCheckpointer`
that they committed; its thread runs a ``PASSIVE`` checkpoint on its own connection shortly after,
which takes no writer's lock and waits for no one (frames a reader still needs stay in the log until
the next round). Nothing about durability changes: a commit is durable in the log either way.

A database left with frames in its log (a process that exited before its checkpointer ran) is
checkpointed by the next commit's round, or by SQLite itself when its last connection closes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

PAUSE_S = 0.05  # commits within this long of each other share one checkpoint


class WalCheckpointer:
    """Checkpoints the databases whose connections report commits, from one daemon thread per process."""

    def __init__(self, *, pause: float = PAUSE_S) -> None:
        self._pause = pause
        self._fresh()
        os.register_at_fork(after_in_child=self._fresh)  # a forked child has no thread yet: it starts its own

    def _fresh(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty: set[Path] = set()
        self._started = False

    def committed(self, path: Path) -> None:
        """``path`` has new frames in its log: checkpoint it soon (cheap; never blocks on the database)."""
        with self._lock:
            self._dirty.add(path)
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="sqlite-wal-checkpointer", daemon=True).start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self._pause)  # let the commits of the next moments join this round
            with self._lock:
                self._wake.clear()
                paths, self._dirty = self._dirty, set()
            for path in paths:
                checkpoint(path)


def checkpoint(path: Path) -> tuple[int, int, int] | None:
    """One ``PASSIVE`` checkpoint of the database at ``path`` on a connection of its own: (busy, frames in
    the log, frames checkpointed), or None when the database is gone or the checkpoint failed (logged)."""
    try:
        # mode=rw: a database deleted since its commit is not created again, empty, by this connection
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (int(row[0]), int(row[1]), int(row[2]))
    except sqlite3.Error as error:
        log.warning("wal_checkpoint_failed", error=type(error).__name__, code=error.sqlite_errorname)
        return None
    finally:
        conn.close()


CHECKPOINTER = WalCheckpointer()
