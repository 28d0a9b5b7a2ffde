"""`nudge-engine why` explains a patient's latest decision: components and weights, rules, reasons."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow
from nudge_engine.services.build.factory import build_cycle
from tests.support.cli import run_cli
from tests.support.world import make_container, seed_cohort


def test_why_shows_each_components_contribution_and_what_put_the_winner_ahead(
    database_url: str, tmp_path: Path
) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 60)
    build_cycle(container, worker="t").run()
    with container.uow() as uow:
        decisions = uow.session.execute(select(PatientDecisionRow.patient_id, PatientDecisionRow.chosen)).all()
    container.dispose()
    patient_id = next(pid for pid, chosen in decisions if len(chosen) >= 2)

    result = run_cli(["why", patient_id, "--json"], database_url=database_url, var_dir=tmp_path / "var")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    winner, runner_up = doc["chosen"][:2]
    for part in winner["components"].values():
        assert part["contribution"] == round(part["value"] * part["weight"], 6)
    assert sum(p["contribution"] for p in winner["components"].values()) >= sum(
        p["contribution"] for p in runner_up["components"].values()
    ) - 1e-6
    assert doc["why_the_winner"] and doc["why_the_winner"][0]["difference"] > 0
    assert doc["ruleset_digest"].startswith("sha256:")


def test_why_for_a_patient_with_no_decision_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_cli(["why", "0" * 32], database_url=database_url, var_dir=tmp_path)
    assert result.exit_code == 2
    assert "no build decision" in result.stderr
