"""`nudge-engine why` explains a patient's latest decision: components and weights, rules, reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow
from nudge_engine.services.build.factory import build_cycle
from tests.support.cli import run_cli
from tests.support.world import make_container, seed_cohort


def test_why_shows_each_components_contribution_and_where_the_winner_and_runner_up_differ(
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
    for pick in doc["chosen"]:
        assert isinstance(pick["explored"], bool)
        for part in pick["components"].values():
            assert part["contribution"] == round(part["value"] * part["weight"], 6)
        assert pick["expected"] == pytest.approx(sum(p["contribution"] for p in pick["components"].values()), abs=1e-5)
    drawn = [p["score"] for p in doc["chosen"] if not p["explored"]]
    assert drawn == sorted(drawn, reverse=True)  # ranked by the recorded (drawn) score; explored picks first
    winner, runner_up = (p["components"] for p in doc["chosen"][:2])
    differ = {name for name in winner.keys() | runner_up.keys()
              if winner.get(name, {}).get("contribution", 0.0) != runner_up.get(name, {}).get("contribution", 0.0)}
    assert {item["component"] for item in doc["why_the_winner"]} == differ
    for item in doc["why_the_winner"]:
        assert item["difference"] == round(item["winner"] - item["runner_up"], 6)
    leads = [item["difference"] for item in doc["why_the_winner"]]
    assert leads == sorted(leads, reverse=True)  # the winner's biggest lead first
    assert doc["ruleset_digest"].startswith("sha256:")


def test_why_for_a_patient_with_no_decision_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_cli(["why", "0" * 32], database_url=database_url, var_dir=tmp_path)
    assert result.exit_code == 2
    assert "no build decision" in result.stderr
