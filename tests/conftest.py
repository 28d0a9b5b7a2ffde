"""Shared fixtures. Every storage test runs on SQLite and on a throw-away PostgreSQL server.

Databases are built by ``alembic upgrade head`` once per backend and session (a template), then
copied per test (SQLite: file copy; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import upgrade
from tests.support.postgres import PostgresServer, start_server

_PG_STATE: dict[str, object] = {"tests": 0}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_server()
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc} (CI installs it; locally: apt-get install postgresql)")
    _PG_STATE["server"] = server
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    admin = make_engine(postgres_server.admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CREATE DATABASE nudge_template"))
    admin.dispose()
    engine = make_engine(postgres_server.url("nudge_template"))
    upgrade(engine)
    engine.dispose()
    return "nudge_template"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "nudge.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template_db: str = request.getfixturevalue("postgres_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server.admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    _PG_STATE["tests"] = int(str(_PG_STATE["tests"])) + 1
    yield server.url(name)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"e_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server.admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    _PG_STATE["tests"] = int(str(_PG_STATE["tests"])) + 1
    yield server.url(name)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    server = _PG_STATE.get("server")
    if isinstance(server, PostgresServer):
        terminalreporter.write_line(
            f"PostgreSQL: {server.version} on 127.0.0.1:{server.port}; "
            f"{_PG_STATE['tests']} tests ran on a PostgreSQL database"
        )
    else:
        terminalreporter.write_line("PostgreSQL: no server was started in this run")
