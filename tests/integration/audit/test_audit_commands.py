"""The audit, keys and patients commands end to end against a migrated database."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import (
    ClinicalFactRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    PatientKeyRow,
    PatientRow,
    ProcedureRow,
    new_id,
)
from nudge_engine.adapters.orm.audit import AuditRecordRow
from nudge_engine.audit.model import IDENTIFIER_KEYS
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from nudge_engine.config import Settings
from nudge_engine.domain.context import PatientIdentifiers
from nudge_engine.logs import IDENTIFIER_KEYS as LOG_IDENTIFIER_KEYS
from nudge_engine.privacy.keys import Keyring, ensure_dev_secrets
from nudge_engine.privacy.vault import IdentifierVault
from tests.integration.audit.conftest import NOW
from tests.support.cli import run_cli

CANARY = PatientIdentifiers(
    source_id="canary-src-4242",
    names=("Zebedee Quartermaine",),
    birth_date=date(1929, 2, 3),
    telecom=("tel:+1-555-0199", "zebedee@canary.example"),
    addresses=("77 Canary Wharf Rd, Springfield, IL 62704",),
    record_numbers=("MRN-CANARY-77", "999-88-7777"),
)
# Every field name that carries an identifier: the log scrubber's list, FHIR Patient's identifying
# elements, PatientIdentifiers' fields and the identifier store's columns.
IDENTIFIER_FIELDS = LOG_IDENTIFIER_KEYS | IDENTIFIER_KEYS | {
    "name", "given", "family", "birthDate", "telecom", "address", "identifier", "contact", "photo",
    "names", "birth_date", "addresses", "record_numbers", "source_id", "ssn", "mrn", "email", "phone",
    "ciphertext", "lookup_hash", "wrapped_key", "patient_id", "external_id",
}  # fmt: skip


@pytest.fixture
def setup(engine: Engine, tmp_path: Path) -> tuple[str, Path, Settings]:
    url = engine.url.render_as_string(hide_password=False)
    assert _cli(["audit", "verify"], url, tmp_path).exit_code == 0  # an empty trail verifies; secrets generated
    settings = ensure_dev_secrets(Settings(var_dir=tmp_path, database_url=url))  # the CLI's, read back
    return url, tmp_path, settings


def _cli(args: list[str], url: str, var_dir: Path) -> Any:
    return run_cli(args, database_url=url, var_dir=var_dir)


def _enrol_canary(engine: Engine, settings: Settings) -> str:
    vault = IdentifierVault(Keyring.from_settings(settings))
    patient = new_id()
    with Session(engine) as session:
        session.execute(insert(PatientRow), [{"id": patient, "shard_key": 1, "created_at": NOW, "birth_year": 1929}])
        vault.enrol_many(session, [(patient, CANARY)], now=NOW)
        session.add_all(
            [
                ConditionRow(patient_id=patient, system="http://snomed.info/sct", code="38341003"),
                ProcedureRow(patient_id=patient, system="http://snomed.info/sct", code="73761001"),
                MedicationRow(patient_id=patient, system="http://www.nlm.nih.gov/research/umls/rxnorm", code="197361"),
                ObservationRow(patient_id=patient, system="http://loinc.org", code="8480-6"),
                ClinicalFactRow(patient_id=patient, kind="fluid-restriction"),
            ]
        )
        AuditTrail.from_settings(settings).append(
            session,
            [
                AuditEvent(event_type="imported", actor_role="system", patient_ref=patient, details={"age": 97}),
                AuditEvent(
                    event_type="blocked",
                    actor_role="system",
                    patient_ref=patient,
                    nudge_id="sauna-15",
                    decision="block",
                    rule_ids=("HT-04", "EX-03"),
                    ruleset_digest="sha256:" + "1f" * 32,
                ),
                AuditEvent(event_type="approved", actor_role="clinician", actor_id=new_id(), patient_ref=patient),
            ],
            now=NOW,
        )
        session.commit()
    return patient


def test_audit_verify_passes_on_a_sound_trail_and_prints_json(
    engine: Engine, setup: tuple[str, Path, Settings]
) -> None:
    url, var_dir, settings = setup
    _enrol_canary(engine, settings)
    assert _cli(["audit", "checkpoint"], url, var_dir).exit_code == 0
    result = _cli(["audit", "verify"], url, var_dir)
    assert result.exit_code == 0, result.output
    assert "audit chain verified: 3 records" in result.output
    doc = json.loads(_cli(["audit", "verify", "--json"], url, var_dir).stdout)
    assert doc["ok"] is True and doc["records_checked"] == 3 and doc["first_bad_seq"] is None


def test_audit_verify_exits_1_naming_a_row_edited_in_the_database(
    engine: Engine, setup: tuple[str, Path, Settings]
) -> None:
    url, var_dir, settings = setup
    _enrol_canary(engine, settings)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_records SET decision = 'deliver' WHERE seq = 2"))
    result = _cli(["audit", "verify"], url, var_dir)
    assert result.exit_code == 1
    assert "record 2" in result.output
    doc = json.loads(_cli(["audit", "verify", "--json"], url, var_dir).stdout)
    assert doc["ok"] is False and doc["first_bad_seq"] == 2


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "fhir"])
def test_exports_hold_no_identifier_field_and_no_identifier_value(
    engine: Engine, setup: tuple[str, Path, Settings], fmt: str, tmp_path: Path
) -> None:
    url, var_dir, settings = setup
    patient = _enrol_canary(engine, settings)
    out = tmp_path / f"export.{fmt}"
    result = _cli(["audit", "export", "--format", fmt, "--output", str(out)], url, var_dir)
    assert result.exit_code == 0, result.output
    body = out.read_text()
    if fmt == "jsonl":
        documents: list[Any] = [json.loads(line) for line in body.splitlines()]
    elif fmt == "csv":
        documents = list(csv.DictReader(io.StringIO(body)))
    else:
        bundle = json.loads(body)
        assert bundle["resourceType"] == "Bundle"
        documents = [entry["resource"] for entry in bundle["entry"]]
        assert {d["resourceType"] for d in documents} == {"AuditEvent"}
    assert len(documents) == 3
    assert _keys(documents) & IDENTIFIER_FIELDS == set()
    assert patient in body  # the surrogate id is there ...
    canaries = ("Quartermaine", "Zebedee", "555-0199", "5550199", "canary.example", "Canary Wharf", "62704",
                "MRN-CANARY", "999-88-7777", "999887777", "1929-02-03", "canary-src-4242", '"97"', ":97")  # fmt: skip
    for value in canaries:
        assert value.lower() not in body.lower(), value  # ... no identifier, and the age 97 is "90+"
    assert "90+" in body


def test_export_filters_by_time_and_rejects_a_bad_date(engine: Engine, setup: tuple[str, Path, Settings]) -> None:
    url, var_dir, settings = setup
    _enrol_canary(engine, settings)
    later = _cli(["audit", "export", "--since", "2026-03-02"], url, var_dir)
    assert later.exit_code == 0 and later.stdout.strip() == ""
    earlier = _cli(["audit", "export", "--until", "2026-03-02T00:00:00Z"], url, var_dir)
    assert len(earlier.stdout.splitlines()) == 3
    assert _cli(["audit", "export", "--since", "yesterday"], url, var_dir).exit_code == 2


def test_exports_are_themselves_audited(engine: Engine, setup: tuple[str, Path, Settings]) -> None:
    url, var_dir, settings = setup
    _enrol_canary(engine, settings)
    _cli(["audit", "export", "--format", "csv"], url, var_dir)
    with Session(engine) as session:
        last = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)).one()
    assert (last.event_type, last.actor_role, last.details) == ("exported", "auditor", {"format": "csv", "records": 3})


def test_erasing_a_patient_destroys_identifiers_and_context_and_the_trail_still_verifies(
    engine: Engine, setup: tuple[str, Path, Settings]
) -> None:
    url, var_dir, settings = setup
    patient = _enrol_canary(engine, settings)
    result = _cli(["patients", "erase", patient, "--json"], url, var_dir)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == {
        "conditions": 1, "procedures": 1, "medications": 1, "observations": 1, "clinical_facts": 1,
    }  # fmt: skip
    vault = IdentifierVault(Keyring.from_settings(settings))
    with Session(engine) as session:
        assert vault.reveal(session, patient) is None
        assert vault.find_patient(session, CANARY.source_id) is None
        key = session.get(PatientKeyRow, patient)
        assert key is not None and key.wrapped_key is None
        for row in (ConditionRow, ProcedureRow, MedicationRow, ObservationRow, ClinicalFactRow):
            assert session.scalar(select(func.count()).select_from(row).where(row.patient_id == patient)) == 0
        erased = session.get(PatientRow, patient)
        assert erased is not None and erased.erased_at is not None and erased.birth_year is None
        last = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)).one()
        assert (last.event_type, last.patient_ref) == ("erased", patient)
    assert _cli(["audit", "verify"], url, var_dir).exit_code == 0
    again = _cli(["patients", "erase", patient], url, var_dir)
    assert again.exit_code == 1 and "already erased" in again.output
    assert _cli(["patients", "erase", new_id()], url, var_dir).exit_code == 2  # not found


def test_keys_rotate_re_wraps_every_data_key_under_a_new_dev_key_and_is_audited(
    engine: Engine, setup: tuple[str, Path, Settings]
) -> None:
    url, var_dir, settings = setup
    patient = _enrol_canary(engine, settings)
    result = _cli(["keys", "rotate", "--json"], url, var_dir)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"kek_version": "v2", "keys_rewrapped": 1}
    rotated = ensure_dev_secrets(Settings(var_dir=var_dir, database_url=url))
    assert rotated.master_keys is not None and rotated.master_keys.startswith("v2:")
    newest_only = rotated.model_copy(update={"master_keys": rotated.master_keys.split(",")[0]})
    with Session(engine) as session:
        assert IdentifierVault(Keyring.from_settings(newest_only)).reveal(session, patient) == CANARY
        last = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)).one()
        assert (last.event_type, last.details) == ("key_rotated", {"kek_version": "v2", "keys_rewrapped": 1})
    assert _cli(["audit", "verify"], url, var_dir).exit_code == 0
