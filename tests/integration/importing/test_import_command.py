"""`nudge-engine import`: every Synthea file imports as is, re-import is a no-op, bad input stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from nudge_engine.adapters.clinical_packs import load_clinical_rows
from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import (
    AuditRecordRow,
    ClinicalPackRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    PatientIdentifierRow,
    PatientRow,
    ProcedureRow,
)
from nudge_engine.config import PROJECT_ROOT
from nudge_engine.guardrails.columns import PatientColumns
from nudge_engine.guardrails.compiler import compile_ruleset
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.guardrails.row_features import columns_from_rows
from tests.support.cli import run_cli
from tests.support.paths import SYNTHEA
from tests.support.world import NOW

COUNTED = (PatientRow, ConditionRow, MedicationRow, ObservationRow, ProcedureRow, PatientIdentifierRow,
           ClinicalPackRow)

pytestmark = pytest.mark.skipif(not SYNTHEA.exists(), reason="shared Synthea data not present")


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.__tablename__: conn.scalar(select(func.count()).select_from(t)) or 0 for t in COUNTED}


def test_importing_all_synthea_files_twice_leaves_the_same_row_counts(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    first = run_cli(["import", str(SYNTHEA), "--json"], database_url=database_url, var_dir=tmp_path)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["created"] == 285
    assert summary["files"] == 22  # 19 FHIR bundles + 3 CSV folders; the run metadata JSON is skipped
    after_first = _counts(engine)
    assert after_first["patients"] == 285
    assert after_first["observations"] > 30_000

    second = run_cli(["import", str(SYNTHEA), "--json"], database_url=database_url, var_dir=tmp_path)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["unchanged"] == summary["patients"]
    assert _counts(engine) == after_first

    # the packs the build reads say what the rows say, for every Synthea patient (both origins)
    ruleset = compile_ruleset(load_ruleset(PROJECT_ROOT / "rules"))
    with Session(engine) as session:
        ids = sorted(session.scalars(select(PatientRow.id)))
        stored = load_contexts(session, ids)
        expected = PatientColumns.from_contexts([stored[pid] for pid in ids], NOW, ruleset)
        got = columns_from_rows(load_clinical_rows(session, ids), NOW, ruleset)
    for key in ruleset.features:
        assert np.array_equal(got.values[key], expected.values[key], equal_nan=True), key
        assert np.array_equal(got.undefined[key], expected.undefined[key]), key
    assert sum(int(np.nansum(expected.values[k])) for k in ruleset.features if k.startswith("medication")) > 0


def _bundle_with_broken_condition() -> dict[str, object]:
    patient = {"resourceType": "Patient", "id": "canary-1", "birthDate": "1970-02-03", "gender": "female",
               "name": [{"given": ["Zelda"], "family": "Quarrington"}]}
    good = {"resourceType": "Condition", "id": "ok", "subject": {"reference": "Patient/canary-1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
            "clinicalStatus": {"coding": [{"code": "active"}]}}
    bad = {"resourceType": "Condition", "id": "broken", "subject": {"reference": "Patient/canary-1"},
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
           "clinicalStatus": {"coding": [{"code": "active"}]}, "onsetDateTime": "31/02/2020"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (patient, good, bad)]}


def test_a_corrupted_bundle_is_rejected_naming_file_resource_and_field_and_nothing_is_stored(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "corrupted.json"
    path.write_text(json.dumps(_bundle_with_broken_condition()))
    result = run_cli(["import", str(path)], database_url=database_url, var_dir=tmp_path)
    assert result.exit_code == 2
    assert "corrupted.json: Condition/broken: field 'onsetDateTime'" in result.stderr
    counts = _counts(engine)
    assert counts == dict.fromkeys(counts, 0)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditRecordRow)) == 0


def test_a_missing_path_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_cli(["import", str(tmp_path / "nope.json")], database_url=database_url, var_dir=tmp_path)
    assert result.exit_code == 2
    assert "nope.json: no such file or folder" in result.stderr


def test_no_synthea_name_ssn_licence_or_address_is_stored_outside_the_identifier_store(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    folder = SYNTHEA / "csv" / "ca59_andrew-nguyen"
    assert run_cli(["import", str(folder)], database_url=database_url, var_dir=tmp_path).exit_code == 0
    import csv

    with (folder / "patients.csv").open() as fh:
        people = list(csv.DictReader(fh))
    # Birth dates are left out of this substring scan: other patients' clinical events fall on the
    # same calendar days. The patients table keeps only the birth year and month by construction.
    canaries = {p[k] for p in people for k in ("FIRST", "LAST", "SSN", "DRIVERS", "PASSPORT", "ADDRESS") if p[k]}
    dump: list[str] = []
    with engine.connect() as conn:
        for table in PatientRow.metadata.sorted_tables:
            if table.name == "patient_identifiers":
                continue
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                dump.append(" ".join(str(v) for v in row))
    blob = "\n".join(dump)
    leaked = sorted(c for c in canaries if c in blob)
    assert leaked == []
