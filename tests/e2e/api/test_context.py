"""PUT /v1/patients/{patient_id}/context: enrol or replace atomically, re-check ready nudges, refuse bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nudge_engine.adapters.orm import ConditionRow, PatientIdentifierRow, PatientRow, ReadyNudgeRow
from nudge_engine.bootstrap import Container
from tests.e2e.api.kit import (
    HYPERTENSION,
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
