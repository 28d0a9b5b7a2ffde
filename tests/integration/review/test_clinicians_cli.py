"""``nudge-engine clinicians``: create (password from stdin, stored hashed), unlock, usage errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from nudge_engine.adapters.orm import ClinicianAccountRow
from nudge_engine.entrypoints.cli import app
from tests.integration.review.kit import PASSWORD


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The CLI configures structlog onto the runner's stderr, which is closed afterwards: reset it."""
    yield
    structlog.reset_defaults()


def _run(args: list[str], database_url: str, var_dir: Path, stdin: str = "") -> object:
    env = {"NUDGE_DATABASE_URL": database_url, "NUDGE_VAR_DIR": str(var_dir), "COLUMNS": "200"}
    return CliRunner().invoke(app, ["clinicians", *args], input=stdin, env=env, catch_exceptions=False)


def _stored(database_url: str) -> list[tuple[str, str, int]]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(ClinicianAccountRow.username, ClinicianAccountRow.password_hash,
                                   ClinicianAccountRow.failed_attempts)).all()
    engine.dispose()
    return [(u, h, n) for u, h, n in rows]


def test_create_reads_the_password_from_stdin_and_stores_only_its_hash(database_url: str, tmp_path: Path) -> None:
    result = _run(["create", "--username", "dr-grace", "--password-stdin"], database_url, tmp_path,
                  stdin=PASSWORD + "\n")

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    [(username, hashed, _)] = _stored(database_url)
    assert username == "dr-grace" and hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert PASSWORD not in result.output  # type: ignore[attr-defined]


def test_a_duplicate_or_invalid_account_is_refused(database_url: str, tmp_path: Path) -> None:
    _run(["create", "--username", "dr-grace", "--password-stdin"], database_url, tmp_path, stdin=PASSWORD + "\n")
    again = _run(["create", "--username", "dr-grace", "--password-stdin"], database_url, tmp_path,
                 stdin=PASSWORD + "\n")
    short = _run(["create", "--username", "dr-ada", "--password-stdin"], database_url, tmp_path, stdin="short\n")
    unknown = _run(["unlock", "--username", "nobody"], database_url, tmp_path)

    assert again.exit_code == 1 and "already exists" in again.output  # type: ignore[attr-defined]
    assert short.exit_code == 2 and "password" in short.output  # type: ignore[attr-defined]
    assert unknown.exit_code == 2  # type: ignore[attr-defined]
    assert [u for u, _, _ in _stored(database_url)] == ["dr-grace"]
