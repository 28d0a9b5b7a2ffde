"""Start ``nudge-engine serve`` in a child process for a test or a benchmark, and stop it again.

The one place that knows how: its own process group (uvicorn's workers go with it), ready once
``/readyz`` answers 200, SIGTERM on the way out (SIGKILL if it hangs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def sqlite_serve_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``serve`` on a fresh migrated SQLite file in ``tmp_path`` (metrics directory unset)."""
    from nudge_engine.adapters.database import make_engine
    from nudge_engine.adapters.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'nudge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    env = {**os.environ, "NUDGE_DATABASE_URL": url, "NUDGE_VAR_DIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_serve(
    env: Mapping[str, str], *, port: int, workers: int, log: Path, ready_within: float = 60.0
) -> Iterator[str]:
    """``serve_cmd`` on 127.0.0.1:``port`` with ``workers`` workers and ``env``; yields the base URL once ready.

    Output goes to ``log``; a server that exits or is not ready within ``ready_within`` seconds raises
    RuntimeError quoting it.
    """
    with serve_process(env, port=port, workers=workers, log=log, ready_within=ready_within):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serve_process(
    env: Mapping[str, str], *, port: int, workers: int, log: Path, ready_within: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """As :func:`running_serve`, but yields the server's process (uvicorn's supervisor when ``workers`` > 1)."""
    proc = start_serve(env, port=port, workers=workers, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)


def start_serve(env: Mapping[str, str], *, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """``serve_cmd`` started in a process group of its own, output to ``log``; the caller waits for it and stops it."""
    code = ("from nudge_engine.entrypoints.cli.serve import serve_cmd; "
            f"serve_cmd(host='127.0.0.1', port={port}, workers={workers})")
    with log.open("w") as sink:
        return subprocess.Popen([sys.executable, "-c", code], env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # it exited on its own (start-up failed)
        proc.wait()
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
