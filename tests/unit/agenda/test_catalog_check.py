"""`nudge-engine catalog check` validates the care programmes against the catalog too."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from nudge_engine.entrypoints.cli import app
from tests.unit.agenda.support import PROGRAMMES_DIR


def test_catalog_check_lists_the_programmes_and_their_versions() -> None:
    result = CliRunner().invoke(app, ["catalog", "check", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["programmes"] == {"hypertension": "1.0.1", "t2d_lifestyle": "1.2.0"}


def test_catalog_check_fails_naming_the_programme_file_and_field(tmp_path: Path) -> None:
    doc = yaml.safe_load((PROGRAMMES_DIR / "hypertension.yaml").read_text())
    doc["behaviours"][0]["nudges"].append("med-double-dose")
    (tmp_path / "hypertension.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(app, ["catalog", "check", "--programmes", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert str(tmp_path / "hypertension.yaml") in lines[0] and "programme 'hypertension'" in lines[0]
    assert "field 'behaviours.0.nudges'" in lines[0] and "unknown nudge 'med-double-dose'" in lines[0]
