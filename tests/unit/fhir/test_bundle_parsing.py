"""FHIR R4 Bundles become patient records; malformed input names file, resource and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.errors import InvalidInput, InvalidResource
from nudge_engine.fhir.bundle import parse_bundle, read_bundle_file
from nudge_engine.fhir.synthea_csv import read_synthea_csv
from tests.support.paths import SYNTHEA

SYNTHEA_FHIR = SYNTHEA / "fhir"


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


PATIENT = {
    "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1961-04-09",
    "name": [{"given": ["Ada"], "family": "Quill"}], "telecom": [{"value": "555-010-9999"}],
    "address": [{"line": ["1 Elm St"], "city": "Omaha", "state": "NE", "postalCode": "68102"}],
}
SUBJECT = {"reference": "urn:uuid:p1"}


def test_blood_pressure_panel_becomes_one_observation_per_component() -> None:
    panel = {
        "resourceType": "Observation", "id": "bp", "status": "final", "subject": SUBJECT,
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": "2025-05-30T09:00:00Z",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 184, "unit": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 96, "unit": "mm[Hg]"}},
        ],
    }
    record = parse_bundle(_bundle(PATIENT, panel)).patients[0]
    values = {o.codings[0].code: o.quantity.value for o in record.context.observations if o.quantity}
    assert values == {"8480-6": 184.0, "8462-4": 96.0}


def test_identifiers_are_kept_apart_from_the_clinical_context() -> None:
    record = parse_bundle(_bundle(PATIENT)).patients[0]
    assert record.identifiers.names == ("Ada Quill",)
    assert record.identifiers.telecom == ("555-010-9999",)
    assert record.timezone == "America/Chicago"
    assert "Quill" not in repr(record.context)
    assert "555-010" not in repr(record.context)


def test_icd10_codes_are_normalised_and_date_only_onsets_are_marked() -> None:
    cond = {
        "resourceType": "Condition", "id": "c1", "subject": SUBJECT,
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "e113513"}]},
        "clinicalStatus": {"coding": [{"code": "active"}]}, "onsetDateTime": "2025-05-11",
    }
    condition = parse_bundle(_bundle(PATIENT, cond)).patients[0].context.conditions[0]
    assert condition.codings[0].code == "E11.3513"
    assert condition.onset is not None and condition.onset.date_only
    assert condition.onset.instant.isoformat() == "2025-05-11T23:59:59+00:00"


def test_medication_reference_resolves_to_the_medication_entry() -> None:
    med = {"resourceType": "Medication", "id": "m1",
           "code": {"coding": [{"system": CodeSystem.RXNORM.value, "code": "855332"}]}}
    request = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "subject": SUBJECT,
               "medicationReference": {"reference": "urn:uuid:m1"}, "authoredOn": "2025-01-02T10:00:00Z"}
    medication = parse_bundle(_bundle(PATIENT, med, request)).patients[0].context.medications[0]
    assert medication.codings[0].code == "855332"
    assert medication.resource_type == "MedicationRequest"


def test_a_condition_without_a_code_is_rejected_naming_resource_and_field() -> None:
    bad = {"resourceType": "Condition", "id": "c9", "subject": SUBJECT,
           "clinicalStatus": {"coding": [{"code": "active"}]}}
    with pytest.raises(InvalidResource) as err:
        parse_bundle(_bundle(PATIENT, bad), source="broken.json")
    assert str(err.value) == "broken.json: Condition/c9: field 'code': is required"


def test_an_unreadable_date_is_rejected_naming_the_field() -> None:
    bad = {"resourceType": "Observation", "id": "o9", "status": "final", "subject": SUBJECT,
           "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]},
           "effectiveDateTime": "yesterday", "valueQuantity": {"value": 22.1, "unit": "kg/m2"}}
    with pytest.raises(InvalidResource, match=r"Observation/o9: field 'effectiveDateTime'"):
        parse_bundle(_bundle(PATIENT, bad))


def test_a_reference_to_an_unknown_patient_is_rejected() -> None:
    stray = {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/nobody"},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}}
    other = dict(PATIENT, id="p2")
    with pytest.raises(InvalidResource, match=r"subject\.reference"):
        parse_bundle(_bundle(PATIENT, other, stray))


def test_ndjson_of_loose_resources_groups_them_by_patient(tmp_path: Path) -> None:
    cond = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "clinicalStatus": {"coding": [{"code": "active"}]}}
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in (PATIENT, cond)) + "\n")
    parsed = read_bundle_file(path)
    assert parsed is not None
    assert [p.identifiers.source_id for p in parsed.patients] == ["p1"]
    assert parsed.patients[0].context.conditions[0].codings[0].code == "44054006"


def test_invalid_json_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.json"
    path.write_text('{"resourceType": "Bundle", "entry": [')
    with pytest.raises(InvalidInput, match=r"truncated\.json: not valid JSON"):
        read_bundle_file(path)


@pytest.mark.skipif(not SYNTHEA_FHIR.exists(), reason="shared Synthea data not present")
def test_every_synthea_bundle_parses_with_one_patient_and_its_conditions() -> None:
    files = sorted(SYNTHEA_FHIR.rglob("*.json"))
    assert len(files) == 19
    for path in files:
        parsed = read_bundle_file(path)
        assert parsed is not None
        assert len(parsed.patients) == 1
        assert parsed.patients[0].context.conditions
        assert parsed.skipped["Encounter"] > 0


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _condition(rid: str, code: str, status: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid, "subject": SUBJECT,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "clinicalStatus": {"coding": [{"code": status}]}}


def test_a_resource_given_twice_with_one_type_and_id_is_rejected_naming_resource_and_field() -> None:
    asthma_resolved = _condition("c1", "195967001", "resolved")
    heart_failure_active = _condition("c1", "84114007", "active")
    with pytest.raises(InvalidResource) as err:
        parse_bundle(_bundle(PATIENT, asthma_resolved, heart_failure_active), source="twice.json")
    assert str(err.value) == "twice.json: Condition/c1: field 'id': appears more than once"


def test_a_statement_and_a_request_may_share_an_id_and_stay_two_medications() -> None:
    statement = {"resourceType": "MedicationStatement", "id": "m1", "status": "completed", "subject": SUBJECT,
                 "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "5640"}]}}
    request = {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "subject": SUBJECT,
               "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "11289"}]}}
    medications = parse_bundle(_bundle(PATIENT, statement, request)).patients[0].context.medications
    assert [(m.resource_type, m.status) for m in medications] == [
        ("MedicationStatement", "completed"), ("MedicationRequest", "active")]


def _glucose_at(when: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "g1", "status": "final", "subject": SUBJECT,
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
            "effectiveDateTime": when, "valueQuantity": {"value": 55, "unit": "mg/dL"}}


def test_a_time_without_a_utc_offset_is_rejected_naming_resource_and_field() -> None:
    with pytest.raises(InvalidResource) as err:
        parse_bundle(_bundle(PATIENT, _glucose_at("2026-03-10T11:30:00")), source="naive.json")
    assert str(err.value).startswith("naive.json: Observation/g1: field 'effectiveDateTime': a time needs a UTC offset")


def test_a_time_with_an_offset_is_kept_as_that_instant() -> None:
    (obs,) = parse_bundle(_bundle(PATIENT, _glucose_at("2026-03-10T11:30:00-05:00"))).patients[0].context.observations
    assert obs.effective is not None and obs.effective.at.isoformat() == "2026-03-10T16:30:00+00:00"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400])
def test_a_quantity_that_is_not_a_finite_float_is_rejected_naming_the_field(value: float) -> None:
    obs = _glucose_at("2026-03-10T11:30:00Z")
    obs["valueQuantity"]["value"] = value
    with pytest.raises(InvalidResource, match=r"Observation/g1: field 'valueQuantity\.value'"):
        parse_bundle(_bundle(PATIENT, obs))


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-05:00"])
def test_a_date_time_that_leaves_the_calendar_in_utc_is_rejected_naming_the_field(when: str) -> None:
    with pytest.raises(InvalidResource, match=r"Observation/g1: field 'effectiveDateTime': out of range"):
        parse_bundle(_bundle(PATIENT, _glucose_at(when)))


def test_synthea_csv_times_without_an_offset_are_read_as_utc(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "patients.csv").write_text("Id,BIRTHDATE,GENDER,STATE\np1,1961-04-09,F,Nebraska\n")
    (folder / "observations.csv").write_text(
        "DATE,PATIENT,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n2026-03-10T11:30:00,p1,2339-0,Glucose,55,mg/dL,numeric\n"
    )
    (obs,) = read_synthea_csv(folder)[0].context.observations
    assert obs.effective is not None and obs.effective.at.isoformat() == "2026-03-10T11:30:00+00:00"


@pytest.mark.parametrize(("born", "youngest"), [("2005", "2005-12-31"), ("2004-02", "2004-02-29"),
                                                ("2005-03-01", "2005-03-01")])
def test_a_partial_birth_date_gives_the_youngest_age_the_patient_can_have(born: str, youngest: str) -> None:
    record = parse_bundle(_bundle(dict(PATIENT, birthDate=born))).patients[0]
    assert record.context.birth_date is not None
    assert record.context.birth_date.isoformat() == youngest


def test_without_a_patient_a_reference_must_name_the_patient_of_the_request() -> None:
    mine = _condition("c1", "38341003", "active") | {"subject": {"reference": "Patient/p1"}}
    theirs = {k: v for k, v in _condition("c2", "44054006", "active").items() if k != "subject"}
    theirs["patient"] = {"reference": "Patient/p2"}
    record = parse_bundle(_bundle(mine), patient_hint="p1").patients[0]
    assert not record.has_demographics and len(record.context.conditions) == 1
    with pytest.raises(InvalidResource) as err:
        parse_bundle(_bundle(mine, theirs), patient_hint="p1")
    assert str(err.value) == "Condition/c2: field 'patient.reference': does not name the patient of the request"
