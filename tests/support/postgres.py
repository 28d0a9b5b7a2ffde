"""Start and stop a throw-away PostgreSQL server for the test session.

``initdb`` and ``pg_ctl`` refuse to run as root, and CI runs as root: the server then runs as the
``postgres`` user (via ``runuser``) on 127.0.0.1 and a free port, in a temporary directory that user
can enter. Without PostgreSQL binaries the caller skips, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    version: str
    as_user: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        _run(self, "pg_ctl", "-D", str(self.datadir), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for found in (shutil.which("pg_ctl"), *(f"{c}/pg_ctl" for c in candidates)):
        if found and Path(found).exists():
            bindir = Path(found).resolve().parent
            if (bindir / "initdb").exists():
                return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(server: PostgresServer, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(server.bindir / tool), *args]
    if server.as_user:
        cmd = ["runuser", "-u", server.as_user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def start_server() -> PostgresServer:
    """initdb + pg_ctl start in a fresh temporary directory; raises RuntimeError with the server's log."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="nudge-pg-"))
    as_user = "postgres" if os.geteuid() == 0 else None
    if as_user:
        shutil.chown(root, user=as_user)
    os.chmod(root, 0o700)
    datadir = root / "data"
    version = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    server = PostgresServer(bindir, datadir, _free_port(), version, as_user)
    _run(server, "initdb", "-D", str(datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = (
        f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    started = _run(server, "pg_ctl", "-D", str(datadir), "-o", options, "-l", str(root / "log"), "-w", "start",
                   check=False)
    if started.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
    return server
