"""``rules check / test / explain / diff`` through the Typer app (contract §3, §6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nudge_engine.entrypoints.cli.rules import app
from tests.unit.guardrails.conftest import RULES, rules_dir_copy

runner = CliRunner()


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1966-01-01", "gender": "female"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (patient, *resources)]}


BP = {"resourceType": "Observation", "id": "bp", "status": "final", "subject": {"reference": "Patient/p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
      "effectiveDateTime": "2025-05-31T18:00:00Z",
      "component": [
          {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
           "valueQuantity": {"value": 184, "unit": "mm[Hg]", "code": "mm[Hg]"}},
          {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
           "valueQuantity": {"value": 96, "unit": "mm[Hg]", "code": "mm[Hg]"}}]}
WALK = {"id": "N1", "category": "exercise", "intensity": "moderate", "duration_min": 30, "tags": ["aerobic"],
        "title": "Walk", "body": "Walk 30 minutes."}


@pytest.fixture(autouse=True)
def _packaged_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGE_RULES_DIR", str(RULES))


def test_explain_prints_exactly_the_contract_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", "--patient", str(_write(tmp_path, "p.json", _bundle(BP))),
                                 "--nudge", str(_write(tmp_path, "n.json", WALK)),
                                 "--at", "2025-06-01T08:00:00Z", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["decision"] == "block" and doc["escalation"] == "urgent_clinical" and doc["caution"] == []
    assert doc["fired"] == [{"rule": "EX-03", "action": "block", "evidence": ["http://loinc.org|8480-6=184 mm[Hg]"]}]
    assert set(doc["ruleset"]) == {"version", "digest"} and doc["ruleset"]["digest"].startswith("sha256:")


def test_explain_exits_2_naming_file_resource_and_field_for_a_bad_bundle(tmp_path: Path) -> None:
    broken = dict(BP, effectiveDateTime="yesterday")
    result = runner.invoke(app, ["explain", "--patient", str(_write(tmp_path, "bad.json", _bundle(broken))),
                                 "--nudge", str(_write(tmp_path, "n.json", WALK)), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and "Observation/bp" in lines[0]
    assert "effectiveDateTime" in lines[0]


def test_explain_exits_2_for_an_unknown_tag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", "--patient", str(_write(tmp_path, "p.json", _bundle())),
                                 "--nudge", str(_write(tmp_path, "n.json", dict(WALK, tags=["parkour"]))), "--json"])
    assert result.exit_code == 2 and "tags[0]" in result.stderr and "parkour" in result.stderr


def test_check_accepts_the_packaged_rule_set() -> None:
    result = runner.invoke(app, ["check", str(RULES)])
    assert result.exit_code == 0 and "33 rules" in result.stdout


def test_check_exits_1_naming_the_tampered_rule(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    path = root / "exercise/EX-03/rule.yaml"
    path.write_text(path.read_text().replace("action: block", "action: forbid", 1))
    result = runner.invoke(app, ["check", str(root)])
    assert result.exit_code == 1
    assert "exercise/EX-03/rule.yaml: EX-03: field 'branches[0].action'" in result.stderr


def test_check_exits_1_when_a_rule_has_no_must_not_fire_case(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    path = root / "heat/HT-02/cases.yaml"
    path.write_text(path.read_text().split("  - name: does not fire on a sauna alone")[0])
    result = runner.invoke(app, ["check", str(root)])
    assert result.exit_code == 1 and "HT-02" in result.stderr and "no_fire" in result.stderr


def test_test_runs_the_cases_beside_the_rules_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    assert runner.invoke(app, ["test", str(RULES)]).exit_code == 0
    root = rules_dir_copy(tmp_path)
    path = root / "sleep/SL-01/cases.yaml"
    path.write_text(path.read_text().replace("action: review", "action: block", 1))
    result = runner.invoke(app, ["test", str(root), "--json"])
    assert result.exit_code == 1
    failures = json.loads(result.stdout)["failures"]
    assert [f["rule"] for f in failures] == ["SL-01"]


def test_diff_reports_newly_blocked_pairs_by_rule(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    path = root / "sleep/SL-01/rule.yaml"
    path.write_text(path.read_text().replace("  - action: review", "  - action: block"))
    result = runner.invoke(app, ["diff", str(RULES), str(root), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["newly_allowed"] == [] and doc["replayed"]["pairs"] > 0
    assert {c["pair"].split("#")[0] for c in doc["newly_blocked"]} == {"SL-01"}
    assert doc["by_rule"] == {"SL-01": {"started_firing": 0, "stopped_firing": 0,
                                        "action_changed": len(doc["newly_blocked"])}}
