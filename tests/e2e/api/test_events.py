"""POST /v1/patients/{patient_id}/events: stored once, audited, replayed for a repeated Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nudge_engine.adapters.orm import PatientEventRow
from nudge_engine.bootstrap import Container
from tests.e2e.api.kit import WATER, audit_records, seed_ready, surrogate_of

Headers = dict[str, str]
OPENED = {"type": "opened", "nudge_id": WATER.id, "occurred_at": "2026-03-10T11:58:00Z", "session_id": "s-1"}


def _stored_events(container: Container) -> int:
    with container.uow() as uow:
        return int(uow.session.execute(select(func.count()).select_from(PatientEventRow)).scalar_one())


def _served(client: TestClient, container: Container, headers: Headers, app_id: str = "app-ada") -> None:
    seed_ready(container, surrogate_of(container, app_id), WATER)
    assert client.get(f"/v1/patients/{app_id}/next-nudge", headers=headers).status_code == 200


def test_an_event_about_a_served_nudge_is_stored_and_audited(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    _served(client, container, service_headers)

    res = client.post("/v1/patients/app-ada/events", json=OPENED, headers=service_headers)

    assert res.status_code == 201
    body = res.json()
    assert body["type"] == "opened" and body["nudge_id"] == WATER.id
    assert _stored_events(container) == 1
    opened = [r for r in audit_records(container) if r.event_type == "opened"]
    assert [(r.patient_ref, r.nudge_id) for r in opened] == [(surrogate_of(container, "app-ada"), WATER.id)]


def test_a_retried_request_with_the_same_idempotency_key_returns_the_first_answer(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    _served(client, container, service_headers)
    headers = {**service_headers, "Idempotency-Key": "evt-0001"}

    first = client.post("/v1/patients/app-ada/events", json=OPENED, headers=headers)
    again = client.post("/v1/patients/app-ada/events", json=OPENED, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _stored_events(container) == 1
    assert len([r for r in audit_records(container) if r.event_type == "opened"]) == 1
    (replayed,) = [r for r in audit_records(container) if r.event_type == "event_replayed"]
    assert (replayed.patient_ref, replayed.nudge_id) == (surrogate_of(container, "app-ada"), WATER.id)
    assert replayed.details == {"event_id": first.json()["event_id"]}


def test_the_same_idempotency_key_with_a_different_body_is_a_conflict(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    _served(client, container, service_headers)
    headers = {**service_headers, "Idempotency-Key": "evt-0002"}
    client.post("/v1/patients/app-ada/events", json=OPENED, headers=headers)

    res = client.post("/v1/patients/app-ada/events", json={**OPENED, "type": "dismissed"}, headers=headers)

    assert res.status_code == 409
    assert res.json()["detail"][0]["code"] == "conflict"
    assert _stored_events(container) == 1
    assert not [r for r in audit_records(container) if r.event_type == "event_replayed"]
    denied = [r for r in audit_records(container) if r.event_type == "request_denied"]
    assert [r.details["status"] for r in denied] == [409]


def test_keys_are_per_patient(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    enrol("app-bo")
    activity = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z", "properties": {"minutes": 25}}
    headers = {**service_headers, "Idempotency-Key": "walk-morning"}

    assert client.post("/v1/patients/app-ada/events", json=activity, headers=headers).status_code == 201
    assert client.post("/v1/patients/app-bo/events", json=activity, headers=headers).status_code == 201
    assert _stored_events(container) == 2


def test_activity_minutes_reach_the_audit_record_as_a_count(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    activity = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z",
                "properties": {"minutes": 30, "kind": "walk"}}

    assert client.post("/v1/patients/app-ada/events", json=activity, headers=service_headers).status_code == 201
    (record,) = [r for r in audit_records(container) if r.event_type == "activity"]
    assert record.details["minutes"] == 30


def test_an_event_about_a_nudge_never_served_to_this_patient_answers_like_a_missing_one(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    enrol("app-bo")
    _served(client, container, service_headers, "app-bo")  # served to Bo, not to Ada

    res = client.post("/v1/patients/app-ada/events", json=OPENED, headers=service_headers)

    assert res.status_code == 404
    assert res.json() == {"detail": [{"code": "not_found", "msg": "nudge not found"}]}
    assert _stored_events(container) == 0


def test_invalid_events_are_refused_naming_the_field(
    client: TestClient, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    cases: list[tuple[dict[str, Any], str]] = [
        ({**OPENED, "type": "liked"}, "'type'"),
        ({**OPENED, "occurred_at": "2026-03-10T11:58:00"}, "occurred_at"),  # no time zone
        ({**OPENED, "properties": {"note": "felt dizzy after the walk"}}, "properties.note"),
        ({**OPENED, "colour": "red"}, "colour"),
        ({"type": "completed", "occurred_at": "2026-03-10T11:00:00Z"}, "nudge_id"),
    ]
    for body, field in cases:
        res = client.post("/v1/patients/app-ada/events", json=body, headers=service_headers)
        assert res.status_code == 422, body
        assert any(item["msg"].startswith("body") and field in item["msg"] for item in res.json()["detail"]), (
            res.json()
        )


def test_events_cannot_come_from_the_future(
    client: TestClient, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    future = {"type": "activity", "occurred_at": "2026-03-10T12:06:00Z"}  # six minutes ahead of the clock

    assert client.post("/v1/patients/app-ada/events", json=future, headers=service_headers).json() == {
        "detail": [{"code": "invalid_input", "msg": "occurred_at: lies in the future"}]
    }


def test_an_occurred_at_with_no_utc_equivalent_is_refused_not_a_server_error(
    client: TestClient, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    first_day = {"type": "activity", "occurred_at": "0001-01-01T00:00:00+14:00"}  # the day before year 1 in UTC

    assert client.post("/v1/patients/app-ada/events", json=first_day, headers=service_headers).json() == {
        "detail": [{"code": "invalid_input", "msg": "occurred_at: out of range"}]
    }
