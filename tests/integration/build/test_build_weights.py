"""`nudge-engine build --weights` re-weighs the score components, and the decisions record the weights."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow
from tests.support.cli import run_cli
from tests.support.world import make_container, seed_cohort


def test_a_weight_override_changes_the_ready_nudges_and_is_recorded_with_each_decision(
    database_url: str, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    container = make_container(database_url, var)
    seed_cohort(container, 150)
    first = run_cli(["build", "--json"], database_url=database_url, var_dir=var)
    assert first.exit_code == 0, first.output
    second = run_cli(["build", "--json", "--weights", "agenda:40,baseline:0,priority:30"],
                     database_url=database_url, var_dir=var)
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert summary["ready"]["superseded"] > 0 and summary["ready"]["inserted"] > 0

    with container.uow() as uow:
        chosen = uow.session.scalars(
            select(PatientDecisionRow.chosen).where(PatientDecisionRow.cycle_id == summary["cycle_id"])
        ).all()
    container.dispose()
    weights = {
        name: part["weight"] for picks in chosen for pick in picks
        for name, part in pick["components"]["components"].items()
    }
    assert weights["agenda"] == 40 and weights["priority"] == 30 and weights["baseline"] == 0


def test_an_unknown_weight_component_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_cli(["build", "--weights", "clicks:3"], database_url=database_url, var_dir=tmp_path)
    assert result.exit_code == 2
    assert "weights: field 'clicks'" in result.stderr
