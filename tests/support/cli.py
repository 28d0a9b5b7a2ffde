"""Run the ``nudge-engine`` CLI in-process against a given database."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from nudge_engine.entrypoints.cli import app


def run_cli(args: list[str], *, database_url: str, var_dir: Path, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    full_env = {"NUDGE_DATABASE_URL": database_url, "NUDGE_VAR_DIR": str(var_dir), "COLUMNS": "200"}
    full_env.update(env or {})
    return runner.invoke(app, args, env=full_env, catch_exceptions=False)
