"""Events outside the tracking plan are refused naming the field, or quarantined when so configured; never stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nudge_engine.adapters.orm import PatientEventRow
from nudge_engine.adapters.orm.feedback import EventIntakeRow
from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
from nudge_engine.tracking.report import event_volume
from nudge_engine.tracking.settings import DataSettings, RetentionMode, TrackingMode
from tests.e2e.api.kit import NOON, FakeGuardrails, audit_records, bundle

Headers = dict[str, str]
ACTIVITY = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z", "properties": {"minutes": 20, "kind": "walk"}}


def _stored(container: Container) -> tuple[int, list[tuple[str, str, list[str]]]]:
    with container.uow() as uow:
        events = uow.session.scalar(select(func.count()).select_from(PatientEventRow)) or 0
        issues = [(r.outcome, r.type, list(r.problems)) for r in uow.session.scalars(select(EventIntakeRow))]
    return int(events), issues


def _post(client: TestClient, headers: Headers, body: dict[str, Any]) -> Any:
    return client.post("/v1/patients/app-ada/events", json=body, headers=headers)


def test_an_event_outside_the_tracking_plan_is_refused_naming_the_field_and_counted(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")

    res = _post(client, service_headers, {**ACTIVITY, "properties": {"minutes": 20, "mood": "happy"}})

    assert res.status_code == 422
    assert res.json()["detail"][0]["msg"].startswith("body.properties.mood: is not a property of 'activity' events")
    assert _stored(container) == (0, [("refused", "activity", ["body.properties.mood:unknown_property"])])


@pytest.mark.parametrize(("body", "field"), [
    ({**ACTIVITY, "type": "shared"}, "body.type"),
    ({**ACTIVITY, "properties": {"minutes": "twenty"}}, "body.properties.minutes"),
    ({**ACTIVITY, "properties": {"minutes": 5000}}, "body.properties.minutes"),
    ({**ACTIVITY, "properties": {"kind": "skydive"}}, "body.properties.kind"),
    ({"type": "opened", "occurred_at": "2026-03-10T11:00:00Z"}, "body.nudge_id"),
])
def test_each_kind_of_misfit_is_refused_naming_its_field(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None],
    body: dict[str, Any], field: str,
) -> None:
    enrol("app-ada")

    res = _post(client, service_headers, body)

    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["msg"].startswith(field)
    assert _stored(container)[0] == 0


def test_an_event_that_matches_the_plan_is_stored(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    assert _post(client, service_headers, ACTIVITY).status_code == 201
    assert _stored(container) == (1, [])


@pytest.fixture
def quarantine_client(container: Container) -> Iterator[TestClient]:
    app = create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                     nudges=StoredNudges(), token_cache_ttl=0,
                     data=DataSettings(tracking_mode=TrackingMode.QUARANTINE))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_in_quarantine_mode_a_misfit_is_set_aside_counted_and_audited_but_never_stored_as_an_event(
    quarantine_client: TestClient, container: Container, service_headers: Headers
) -> None:
    client = quarantine_client
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)

    res = _post(client, service_headers, {**ACTIVITY, "properties": {"minutes": 20, "mood": "happy"}})
    ok = _post(client, service_headers, ACTIVITY)

    assert res.status_code == 202, res.text
    assert res.json()["status"] == "quarantined"
    assert res.json()["problems"] == [{"field": "body.properties.mood", "code": "unknown_property"}]
    assert ok.status_code == 201
    events, issues = _stored(container)
    assert (events, [(o, t) for o, t, _ in issues]) == (1, [("quarantined", "activity")])
    (audited,) = [r for r in audit_records(container) if r.event_type == "event_quarantined"]
    assert audited.details["problems"] == ["unknown_property"]
    with container.uow() as uow:
        (volume,) = event_volume(uow.session, NOON - timedelta(days=1), min_cell=1)
        hidden = event_volume(uow.session, NOON - timedelta(days=1))
    assert (volume.type, volume.accepted, volume.quarantined, volume.refusal_rate) == ("activity", 1, 1, 0.5)
    assert [(v.accepted, v.suppressed) for v in hidden] == [(None, True)]  # one patient: below 11


@pytest.fixture
def low_retention_client(container: Container) -> Iterator[TestClient]:
    app = create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                     nudges=StoredNudges(), token_cache_ttl=0,
                     data=DataSettings(retention_mode=RetentionMode.LOW))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_in_low_retention_mode_an_event_older_than_the_window_is_not_stored(
    low_retention_client: TestClient, container: Container, service_headers: Headers
) -> None:
    client = low_retention_client
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
    old = (NOON - timedelta(days=15)).isoformat().replace("+00:00", "Z")

    res = _post(client, service_headers, {**ACTIVITY, "occurred_at": old})

    assert res.status_code == 422
    assert res.json()["detail"][0]["msg"].startswith("occurred_at: older than the raw-event retention window")
    assert _stored(container) == (0, [])


def test_the_openapi_document_shows_the_tracking_plan_as_the_events_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["EventCreate"]

    variants = {v["properties"]["type"]["enum"][0]: v for v in schema["oneOf"]}
    assert set(variants) == {"activity", "completed", "delivered", "dismissed", "opened"}
    assert "nudge_id" in variants["opened"]["required"]
    assert variants["activity"]["properties"]["properties"]["properties"]["minutes"] == {
        "type": "integer", "minimum": 0, "maximum": 1440}


def test_in_quarantine_mode_a_retried_misfit_gets_the_first_answer_and_is_set_aside_once(
    quarantine_client: TestClient, container: Container, service_headers: Headers
) -> None:
    client = quarantine_client
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
    misfit = {**ACTIVITY, "properties": {"minutes": 20, "mood": "happy"}}
    keyed = {**service_headers, "Idempotency-Key": "mood-1"}

    first = client.post("/v1/patients/app-ada/events", json=misfit, headers=keyed)
    again = client.post("/v1/patients/app-ada/events", json=misfit, headers=keyed)
    reused = client.post("/v1/patients/app-ada/events", json={**misfit, "properties": {"mood": "sad"}}, headers=keyed)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert reused.status_code == 409
    assert _stored(container) == (0, [("quarantined", "activity", ["body.properties.mood:unknown_property"])])
    kinds = [r.event_type for r in audit_records(container)]
    assert (kinds.count("event_quarantined"), kinds.count("event_replayed")) == (1, 1)


def test_in_quarantine_mode_a_key_a_misfit_used_is_not_taken_by_a_valid_event(
    quarantine_client: TestClient, container: Container, service_headers: Headers
) -> None:
    client = quarantine_client
    client.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
    keyed = {**service_headers, "Idempotency-Key": "mood-2"}

    first = client.post("/v1/patients/app-ada/events", json={**ACTIVITY, "properties": {"mood": "happy"}},
                        headers=keyed)
    valid = client.post("/v1/patients/app-ada/events", json=ACTIVITY, headers=keyed)

    assert first.status_code == 202
    assert valid.status_code == 409, valid.text
    assert _stored(container) == (0, [("quarantined", "activity", ["body.properties.mood:unknown_property"])])
