"""Session-aware next nudge through the API: what the patient just did in the app session shapes what comes next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from tests.e2e.api.kit import CatalogNudge, audit_records, seed_ready, surrogate_of

Headers = dict[str, str]
WALK_10 = CatalogNudge("walk-10min", "exercise", "light")
WALK_BRISK = CatalogNudge("walk-brisk-20", "exercise", "moderate")
WATER = CatalogNudge("water-glass-morning", "hydration")
SLEEP = CatalogNudge("sleep-wind-down", "sleep")
WELCOME = CatalogNudge("onb-welcome", "onboarding")
SET_GOAL = CatalogNudge("onb-set-goal", "onboarding")


def _next(client: TestClient, headers: Headers, session: str | None = None) -> str | None:
    params = {"session_id": session} if session else {}
    res = client.get("/v1/patients/app-ada/next-nudge", params=params, headers=headers)
    assert res.status_code in (200, 204), res.text
    return str(res.json()["nudge"]["id"]) if res.status_code == 200 else None


def _event(client: TestClient, headers: Headers, type_: str, nudge_id: str | None, session: str,
           **properties: Any) -> None:
    body: dict[str, Any] = {"type": type_, "occurred_at": "2026-03-10T11:59:00Z", "session_id": session,
                            "properties": properties}
    if nudge_id:
        body["nudge_id"] = nudge_id
    res = client.post("/v1/patients/app-ada/events", json=body, headers=headers)
    assert res.status_code == 201, res.text


def _queue(container: Container, *scored: tuple[CatalogNudge, float]) -> None:
    pid = surrogate_of(container, "app-ada")
    for nudge, score in scored:
        seed_ready(container, pid, nudge, score=score)


def test_in_one_session_completing_a_walking_nudge_stops_walking_nudges_for_the_rest_of_that_session(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WALK_10, 3.0), (WALK_BRISK, 2.0), (WATER, 1.0))

    assert _next(client, service_headers, "s-morning") == WALK_10.id
    _event(client, service_headers, "completed", WALK_10.id, "s-morning")

    assert _next(client, service_headers, "s-morning") == WATER.id  # not the brisk walk
    assert _next(client, service_headers, "s-morning") is None  # the brisk walk is held for this session
    assert _next(client, service_headers, "s-evening") == WALK_BRISK.id  # a new session may walk again


def test_an_activity_reported_as_a_walk_holds_walking_nudges_in_that_session(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WALK_BRISK, 2.0), (WATER, 1.0))
    _event(client, service_headers, "activity", None, "s-1", minutes=25, kind="walk")

    assert _next(client, service_headers, "s-1") == WATER.id


def test_dismissing_a_nudge_holds_its_category_for_the_rest_of_the_session(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WATER, 3.0))
    assert _next(client, service_headers, "s-1") == WATER.id
    _event(client, service_headers, "dismissed", WATER.id, "s-1", reason="not_now")
    _queue(container, (CatalogNudge("water-bottle", "hydration"), 2.0), (SLEEP, 1.0))

    assert _next(client, service_headers, "s-1") == SLEEP.id


def test_a_just_completed_nudge_brings_its_follow_up_to_the_front(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WELCOME, 9.0), (WATER, 5.0), (SET_GOAL, 1.0))
    assert _next(client, service_headers, "s-1") == WELCOME.id
    _event(client, service_headers, "completed", WELCOME.id, "s-1")

    assert _next(client, service_headers, "s-1") == SET_GOAL.id


def test_without_a_session_id_the_ready_queue_order_stands(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WALK_10, 3.0), (WALK_BRISK, 2.0))
    assert _next(client, service_headers, "s-1") == WALK_10.id
    _event(client, service_headers, "completed", WALK_10.id, "s-1")

    assert _next(client, service_headers) == WALK_BRISK.id


def test_the_serve_audit_record_counts_what_the_session_held_back(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _queue(container, (WALK_10, 3.0), (WALK_BRISK, 2.0), (WATER, 1.0))
    _next(client, service_headers, "s-1")
    _event(client, service_headers, "completed", WALK_10.id, "s-1")
    _next(client, service_headers, "s-1")
    _next(client, service_headers, "s-1")

    served = [r for r in audit_records(container) if r.event_type == "served"]
    assert [(r.nudge_id, r.details.get("session_held")) for r in served[-2:]] == [
        (WATER.id, 1), (None, 1),
    ]
    assert served[-1].details["outcome"] == "held_by_session"
