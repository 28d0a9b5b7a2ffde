"""The rules find Synthea's diabetics, hypertensives, heart-failure, CKD and pregnant patients and its
insulin and warfarin users (Synthea codes conditions in SNOMED CT and drugs as RxNorm products).

Who *should* be found is worked out here from the raw CSV rows by their descriptions, independently of
the rules' value sets; the patients themselves go through the project's Synthea CSV reader.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.fhir.bundle import read_bundle
from nudge_engine.fhir.synthea_csv import read_synthea_csv
from nudge_engine.guardrails.cases import CaseNudge, case_nudge
from nudge_engine.guardrails.compiler import CompiledRuleSet, compile_ruleset
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.loader import load_ruleset
from tests.support.paths import PROJECT, SYNTHEA

FOLDERS = sorted(p for p in (SYNTHEA / "csv").glob("*") if (p / "patients.csv").is_file())
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # after every record: nothing recent, open conditions still active

pytestmark = pytest.mark.skipif(not FOLDERS, reason="Synthea sample data not present")


@pytest.fixture(scope="module")
def compiled() -> CompiledRuleSet:
    return compile_ruleset(load_ruleset(PROJECT / "rules"))


@pytest.fixture(scope="module")
def contexts() -> dict[str, PatientContext]:
    return {r.identifiers.source_id: r.context for folder in FOLDERS for r in read_synthea_csv(folder)}


def _open_rows(name: str, wanted: Callable[[str], bool]) -> set[str]:
    """Patients with a row whose description matches and that has no STOP date."""
    found: set[str] = set()
    for folder in FOLDERS:
        with (folder / name).open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if wanted(row["DESCRIPTION"].lower()) and not row.get("STOP"):
                    found.add(row["PATIENT"])
    return found


def _n(**fields: object) -> Nudge:
    return case_nudge(CaseNudge.model_validate(fields))


def _firing(compiled: CompiledRuleSet, contexts: dict[str, PatientContext], ids: set[str], nudge: Nudge,
            rule: str, at: datetime = LATER) -> set[str]:
    return {pid for pid in ids if rule in decide(contexts[pid], nudge, compiled, at).fired_rules}


@pytest.mark.parametrize(("label", "name", "wanted", "nudge", "rule"), [
    ("diabetics", "conditions.csv", lambda d: "diabetes" in d and "prediabetes" not in d,
     {"category": "fasting", "tags": ["intermittent_fasting"]}, "FS-01"),
    ("hypertensives", "conditions.csv", lambda d: "hypertension" in d and "pulmonary" not in d,
     {"category": "exercise", "intensity": "light", "duration_min": 20, "tags": ["aerobic"]}, "EX-04"),
    ("heart failure", "conditions.csv", lambda d: "heart failure" in d,
     {"category": "hydration", "tags": ["fluid_increase"]}, "DT-03"),
    ("CKD 3-5 and dialysis", "conditions.csv",
     lambda d: any(k in d for k in ("kidney disease stage 3", "kidney disease stage 4", "end-stage renal")),
     {"category": "diet", "tags": ["potassium_rich"]}, "DT-01"),
    ("insulin users", "medications.csv", lambda d: "insulin" in d,
     {"category": "exercise", "intensity": "moderate", "duration_min": 30, "tags": ["aerobic"]}, "EX-09"),
    ("warfarin users", "medications.csv", lambda d: "warfarin" in d,
     {"category": "diet", "tags": ["vitamin_k_rich"]}, "DT-04"),
])
def test_the_rules_find_every_synthea_patient_of_the_group(
    compiled: CompiledRuleSet, contexts: dict[str, PatientContext], label: str, name: str,
    wanted: Callable[[str], bool], nudge: dict[str, object], rule: str,
) -> None:
    expected = _open_rows(name, wanted) & set(contexts)
    assert expected, f"the sample holds no {label}"
    assert _firing(compiled, contexts, expected, _n(**nudge), rule) == expected


def test_the_rules_find_synthea_pregnancies_and_let_them_end(
    compiled: CompiledRuleSet, contexts: dict[str, PatientContext]
) -> None:
    """Open pregnancies count until 42 weeks after onset; closed ones end at their STOP date.

    (The CSV reader marks rows with a STOP date as resolved whatever the decision time, so a closed
    pregnancy is only checked after its end.)
    """
    diet = _n(category="weight", tags=["weight_loss_goal"])
    open_checked = closed_checked = 0
    for folder in FOLDERS:
        with (folder / "conditions.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["DESCRIPTION"].lower() != "normal pregnancy":
                    continue
                ctx = contexts[row["PATIENT"]]
                start = datetime.fromisoformat(row["START"]).replace(tzinfo=UTC)
                if not row["STOP"]:
                    assert "WT-03" in decide(ctx, diet, compiled, start + timedelta(days=20)).fired_rules
                    assert "WT-03" not in decide(ctx, diet, compiled, start + timedelta(days=300)).fired_rules
                    open_checked += 1
                else:
                    stop = datetime.fromisoformat(row["STOP"]).replace(tzinfo=UTC) + timedelta(days=2)
                    later_pregnancy = any(
                        c.onset is not None and c.clinical_status == "active" and c.onset.at.date() >= stop.date()
                        for c in ctx.conditions
                    )
                    if not later_pregnancy:
                        assert "WT-03" not in decide(ctx, diet, compiled, stop).fired_rules
                        closed_checked += 1
    assert open_checked > 0 and closed_checked > 0


def test_synthea_fhir_bundles_are_explained_without_errors(compiled: CompiledRuleSet) -> None:
    bundles = sorted((SYNTHEA / "fhir").glob("*/*.json"))
    assert bundles
    walk = _n(category="exercise", intensity="vigorous", duration_min=30, tags=["aerobic"])
    for path in bundles:
        ctx = read_bundle(Path(path)).patients[0].context
        decision = decide(ctx, walk, compiled, LATER)
        assert not any(f.failed for f in decision.fired), path.name
