"""PUT /v1/patients/{patient_id}/context: enrol or replace atomically, re-check ready nudges, refuse bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import ConditionRow, PatientIdentifierRow, PatientRow, ReadyNudgeRow
from nudge_engine.bootstrap import Container
from tests.e2e.api.kit import (
    HYPERTENSION,
    NOON,
    UNSTABLE_ANGINA,
    WALK,
    WATER,
    audit_records,
    bundle,
    condition,
    ready_status,
    seed_ready,
    surrogate_of,
)

Headers = dict[str, str]


def _count(container: Container, table: Any) -> int:
    with container.uow() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())


def _version(container: Container, app_id: str) -> int:
    with container.uow() as uow:
        pid = container.vault.find_patient(uow.session, app_id)
        return int(uow.session.execute(select(PatientRow.context_version).where(PatientRow.id == pid)).scalar_one())


def test_an_unknown_patient_is_enrolled_with_201_and_a_known_one_replaced_with_200(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    first = client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
    second = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", condition(HYPERTENSION)),
                        headers=service_headers)

    assert (first.status_code, first.json()["status"]) == (201, "enrolled")
    assert (second.status_code, second.json()["status"]) == (200, "replaced")
    assert second.json()["context_version"] == first.json()["context_version"] + 1
    assert _count(container, ConditionRow) == 1


def test_fhir_json_and_plain_json_are_both_accepted_other_media_types_are_not(
    client: TestClient, service_headers: Headers
) -> None:
    import json

    doc = json.dumps(bundle("app-ada"))
    fhir = client.put("/v1/patients/app-ada/context", content=doc,
                      headers={**service_headers, "Content-Type": "application/fhir+json; charset=utf-8"})
    text = client.put("/v1/patients/app-ada/context", content=doc,
                      headers={**service_headers, "Content-Type": "text/plain"})

    assert fhir.status_code == 201
    assert text.status_code == 415
    assert text.json()["detail"][0]["code"] == "unsupported_media_type"


def test_the_same_bundle_twice_changes_nothing(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    doc = bundle("app-ada", condition(HYPERTENSION))
    client.put("/v1/patients/app-ada/context", json=doc, headers=service_headers)
    again = client.put("/v1/patients/app-ada/context", json=doc, headers=service_headers)

    assert (again.status_code, again.json()["status"]) == (200, "unchanged")
    assert _version(container, "app-ada") == 1


def test_a_malformed_resource_is_refused_naming_resource_and_field_and_nothing_is_stored(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    broken = condition(HYPERTENSION)
    broken["code"] = {"coding": "not-a-list"}

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", broken), headers=service_headers)

    assert res.status_code == 422
    (item,) = res.json()["detail"]
    assert item["code"] == "invalid_resource"
    assert "Condition" in item["msg"] and "code" in item["msg"]
    assert _count(container, PatientRow) == 0
    assert _count(container, PatientIdentifierRow) == 0


def test_a_bad_replacement_leaves_the_previous_context_in_place(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada", condition(HYPERTENSION)),
               headers=service_headers)
    broken = condition(UNSTABLE_ANGINA)
    broken["onsetDateTime"] = "yesterday-ish"

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", broken), headers=service_headers)

    assert res.status_code == 422
    assert _version(container, "app-ada") == 1
    with container.uow() as uow:
        assert list(uow.session.scalars(select(ConditionRow.code))) == [HYPERTENSION]


def test_a_bundle_about_another_patient_is_refused(client: TestClient, service_headers: Headers) -> None:
    res = client.put("/v1/patients/app-ada/context", json=bundle("app-bo"), headers=service_headers)

    assert res.status_code == 422
    assert res.json()["detail"][0]["msg"].startswith("request body: Patient: field 'id'")


def test_a_bundle_that_is_not_a_bundle_is_refused(client: TestClient, service_headers: Headers) -> None:
    res = client.put("/v1/patients/app-ada/context", json={"resourceType": "Patient", "id": "app-ada"},
                     headers=service_headers)
    assert res.status_code == 422


def test_a_new_contraindication_supersedes_ready_nudges_at_once_and_keeps_safe_ones(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo")
    pid = surrogate_of(container, "app-bo")
    walk = seed_ready(container, pid, WALK)
    water = seed_ready(container, pid, WATER)

    res = client.put("/v1/patients/app-bo/context", json=bundle("app-bo", condition(UNSTABLE_ANGINA)),
                     headers=service_headers)

    assert res.json()["ready_nudges"] == {"kept": 1, "superseded": 1}
    assert ready_status(container, walk) == "superseded"
    assert ready_status(container, water) == "ready"
    with container.uow() as uow:
        versions = set(uow.session.scalars(select(ReadyNudgeRow.context_version).where(ReadyNudgeRow.id == water)))
    assert versions == {2}
    types = [r.event_type for r in audit_records(container)]
    assert "superseded" in types and "context_replaced" in types


def test_identifiers_from_the_bundle_go_only_to_the_identifier_store(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)

    for record in audit_records(container):
        text = repr(tuple(record))
        assert "Quillfeather" not in text and "555-0199" not in text and "app-ada" not in text


def _refusal(res: Any) -> str:
    assert res.status_code == 422, res.text
    (item,) = res.json()["detail"]
    assert item["code"] == "invalid_resource"
    return str(item["msg"])


def test_a_resource_given_twice_is_refused_naming_it_and_nothing_is_stored(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    asthma_resolved = condition("195967001", rid="c1", status="resolved")
    heart_failure_active = condition("84114007", rid="c1", status="active")

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", asthma_resolved, heart_failure_active),
                     headers=service_headers)

    assert _refusal(res) == "request body: Condition/c1: field 'id': appears more than once"
    assert _count(container, PatientRow) == 0


def test_a_statement_and_a_request_sharing_an_id_are_stored_as_two_medications(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    ibuprofen_stopped = {"resourceType": "MedicationStatement", "id": "m1", "status": "completed",
                         "medicationCodeableConcept": {"coding": [{"system": rx, "code": "5640"}]}}
    warfarin_active = {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
                       "medicationCodeableConcept": {"coding": [{"system": rx, "code": "11289"}]}}

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", ibuprofen_stopped, warfarin_active),
                     headers=service_headers)

    assert res.status_code == 201
    pid = surrogate_of(container, "app-ada")
    with container.uow() as uow:
        stored = load_contexts(uow.session, [pid])[pid]
    assert sorted((m.resource_type, m.status, [c.code for c in m.codings]) for m in stored.medications) == [
        ("MedicationRequest", "active", ["11289"]), ("MedicationStatement", "completed", ["5640"])]


def _glucose(value: str) -> str:
    """A bundle as JSON text whose one Observation has ``value`` (raw JSON) as valueQuantity.value."""
    import json

    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
           "effectiveDateTime": "2026-03-10T11:00:00Z", "valueQuantity": {"value": 1, "unit": "mg/dL"}}
    return json.dumps(bundle("app-ada", obs)).replace('"value": 1,', f'"value": {value},')


def _onset(when: str) -> dict[str, Any]:
    cond = condition(HYPERTENSION)
    cond["onsetDateTime"] = when
    return bundle("app-ada", cond)


def _patient_with(**fields: Any) -> dict[str, Any]:
    doc = bundle("app-ada")
    doc["entry"][0]["resource"].update(fields)
    return doc


_RX = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "11289"}
_BAD_VALUES = {
    "huge integer quantity": (_glucose("1" + "0" * 400), "Observation/o1: field 'valueQuantity.value'"),
    "NaN quantity": (_glucose("NaN"), "Observation/o1: field 'valueQuantity.value'"),
    "infinite quantity": (_glucose("-Infinity"), "Observation/o1: field 'valueQuantity.value'"),
    "year 1 east of UTC": (_onset("0001-01-01T00:00:00+14:00"), "Condition/cond-38341003: field 'onsetDateTime'"),
    "year 9999 west of UTC": (_onset("9999-12-31T23:00:00-05:00"), "Condition/cond-38341003: field 'onsetDateTime'"),
    "gender as a list": (_patient_with(gender=["female"]), "Patient/app-ada: field 'gender'"),
    "contained as a number": (
        bundle("app-ada", {"resourceType": "MedicationStatement", "id": "m1", "status": "active", "contained": 5,
                           "medicationCodeableConcept": {"coding": [_RX]}}),
        "MedicationStatement/m1: field 'contained'",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_VALUES))
def test_out_of_range_or_ill_typed_values_are_refused_with_422_naming_resource_and_field(
    client: TestClient, container: Container, service_headers: Headers, case: str
) -> None:
    doc, where = _BAD_VALUES[case]
    if isinstance(doc, str):
        res = client.put("/v1/patients/app-ada/context", content=doc,
                         headers={**service_headers, "Content-Type": "application/fhir+json"})
    else:
        res = client.put("/v1/patients/app-ada/context", json=doc, headers=service_headers)

    assert _refusal(res).startswith(f"request body: {where}:")
    assert _count(container, PatientRow) == 0


def test_a_time_without_a_utc_offset_is_refused_naming_resource_and_field_and_nothing_is_stored(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    res = client.put("/v1/patients/app-ada/context", json=_onset("2026-03-10T11:30:00"), headers=service_headers)

    assert _refusal(res).startswith(
        "request body: Condition/cond-38341003: field 'onsetDateTime': a time needs a UTC offset")
    assert _count(container, PatientRow) == 0


def test_a_year_only_birth_date_is_stored_as_the_youngest_age_the_patient_can_have(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    res = client.put("/v1/patients/app-ada/context", json=_patient_with(birthDate="2005"), headers=service_headers)

    assert res.status_code == 201
    pid = surrogate_of(container, "app-ada")
    with container.uow() as uow:
        born = uow.session.execute(select(PatientRow.birth_year, PatientRow.birth_month).where(PatientRow.id == pid))
        stored = load_contexts(uow.session, [pid])[pid]
    assert tuple(born.one()) == (2005, 12)
    assert stored.age_at(NOON) == 20  # on 2026-03-10 someone born in 2005 may still be 20


def _demographics(container: Container, app_id: str) -> tuple[Any, ...]:
    pid = surrogate_of(container, app_id)
    with container.uow() as uow:
        row = uow.session.execute(select(PatientRow.birth_year, PatientRow.birth_month, PatientRow.sex,
                                         PatientRow.deceased, PatientRow.timezone).where(PatientRow.id == pid))
        return tuple(row.one())


def test_a_bundle_without_a_patient_replaces_the_clinical_resources_and_keeps_the_demographics(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    client.put("/v1/patients/app-ada/context", json=_patient_with(deceasedBoolean=True, address=[{"state": "CA"}]),
               headers=service_headers)
    before = _demographics(container, "app-ada")

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", condition(HYPERTENSION),
                                                                 with_patient=False), headers=service_headers)

    assert (res.status_code, res.json()["status"]) == (200, "replaced")
    assert before == (1971, 4, "female", True, "America/Los_Angeles")
    assert _demographics(container, "app-ada") == before
    pid = surrogate_of(container, "app-ada")
    with container.uow() as uow:
        assert list(uow.session.scalars(select(ConditionRow.code))) == [HYPERTENSION]
        identifiers = container.vault.reveal(uow.session, pid)
    assert identifiers is not None and identifiers.names == ("Canary Quillfeather",)


def test_a_patient_without_an_address_keeps_the_stored_time_zone(
    client: TestClient, container: Container, service_headers: Headers
) -> None:
    """The zone comes from the address; an update that omits it must not move quiet hours to UTC."""
    client.put("/v1/patients/app-ada/context", json=_patient_with(address=[{"state": "NY"}]), headers=service_headers)

    res = client.put("/v1/patients/app-ada/context", json=_patient_with(gender="male"), headers=service_headers)

    assert res.status_code == 200
    assert _demographics(container, "app-ada")[2:] == ("male", False, "America/New_York")


@pytest.mark.parametrize("with_patient", [True, False])
def test_a_resource_about_another_patient_is_refused_naming_its_reference(
    client: TestClient, container: Container, service_headers: Headers, with_patient: bool
) -> None:
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
    stray = condition(HYPERTENSION)
    stray["subject"] = {"reference": "Patient/app-bo"}

    res = client.put("/v1/patients/app-ada/context", json=bundle("app-ada", stray, with_patient=with_patient),
                     headers=service_headers)

    assert _refusal(res).startswith("request body: Condition/cond-38341003: field 'subject.reference'")
    assert _version(container, "app-ada") == 1
    assert _demographics(container, "app-ada")[:3] == (1971, 4, "female")
