"""With the shipped rule set and catalog: a contraindication gained between build and request is honoured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from nudge_engine.adapters.orm import ReviewItemRow
from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from tests.e2e.api.kit import (
    CatalogNudge,
    Clock,
    audit_records,
    bundle,
    condition,
    content_digest_of,
    patient_resource,
    ready_status,
    seed_ready,
    surrogate_of,
)

BRISK_WALK = CatalogNudge("ex-brisk-walk-30min", "exercise", "moderate")
WATER_BOTTLE = CatalogNudge("hyd-water-bottle", "hydration")
MOUNTAIN_HIKE = CatalogNudge("ex-mountain-hike", "exercise", "vigorous")
COQ_AU_VIN = CatalogNudge("diet-coq-au-vin", "diet")
SHORT_WALK = CatalogNudge("ex-walk-10min", "exercise", "light")

PutContext = Callable[..., Any]  # (app_id, *resources) -> the answer to PUT /context


def queue(container: Container, patient_id: str, nudge: CatalogNudge, **row: Any) -> str:
    """A ready row decided on the shipped catalog's content of ``nudge``, as a build over it queues it (the app
    here serves the catalog's content)."""
    return seed_ready(container, patient_id, nudge, content_digest=content_digest_of(container, nudge.id, catalog=True),
                      **row)


def blood_pressure(systolic: int, diastolic: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": "bp-today", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": "2026-03-10T09:00:00Z",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": systolic, "unit": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": diastolic, "unit": "mm[Hg]"}},
        ],
    }


@pytest.fixture
def real_client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container, token_cache_ttl=0)) as client:
        yield client


@pytest.fixture
def put_context(real_client: TestClient, service_headers: dict[str, str]) -> PutContext:
    """PUT the app patient's context: their Patient resource and ``resources``, as the service."""
    def put(app_id: str, *resources: dict[str, Any]) -> Any:
        return real_client.put(f"/v1/patients/{app_id}/context", json=bundle(app_id, *resources),
                               headers=service_headers)
    return put


def test_the_shipped_rule_set_is_loaded_and_reported_ready(real_client: TestClient) -> None:
    body = real_client.get("/readyz").json()
    assert body["status"] == "ready" and body["ruleset"].startswith("sha256:")


def test_blood_pressure_of_184_over_112_after_the_build_stops_the_brisk_walk(
    real_client: TestClient, container: Container, service_headers: dict[str, str], put_context: PutContext,
) -> None:
    assert put_context("app-dee").status_code == 201
    pid = surrogate_of(container, "app-dee")
    walk = queue(container, pid, BRISK_WALK, score=0.9)
    water = queue(container, pid, WATER_BOTTLE, score=0.2)

    put = put_context("app-dee", blood_pressure(184, 112))
    served = real_client.get("/v1/patients/app-dee/next-nudge", headers=service_headers)

    assert put.json()["ready_nudges"] == {"kept": 1, "superseded": 1}
    assert ready_status(container, walk) == "superseded"
    assert served.status_code == 200 and served.json()["delivery_id"] == water
    superseded = [r for r in audit_records(container) if r.event_type == "superseded"]
    assert [(r.nudge_id, r.decision, list(r.rule_ids)) for r in superseded] == [(BRISK_WALK.id, "block", ["EX-03"])]


def test_the_catalogs_burden_limits_hold_at_serve_time(
    real_client: TestClient, container: Container, service_headers: dict[str, str], put_context: PutContext,
) -> None:
    put_context("app-dee")
    pid = surrogate_of(container, "app-dee")
    queue(container, pid, WATER_BOTTLE, score=0.9)
    queue(container, pid, CatalogNudge("hyd-8-glasses", "hydration"), score=0.5)

    first = real_client.get("/v1/patients/app-dee/next-nudge", headers=service_headers)
    second = real_client.get("/v1/patients/app-dee/next-nudge", headers=service_headers)

    assert first.status_code == 200
    assert second.status_code == 204  # one hydration nudge per day (catalog category cap)
    assert [r.details.get("outcome") for r in audit_records(container) if r.event_type == "served"][-1] == "capped"


def test_a_seasonal_catalog_nudge_is_served_inside_its_window_by_the_services_clock_and_not_after(
    real_client: TestClient, container: Container, service_headers: dict[str, str], clock: Clock,
    put_context: PutContext,
) -> None:
    # the catalog's mountain hike runs from May to October 2025: the service's clock decides, not the host's
    clock.now = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    assert put_context("app-eve").status_code == 201
    pid = surrogate_of(container, "app-eve")
    in_season = queue(container, pid, MOUNTAIN_HIKE)

    served = real_client.get("/v1/patients/app-eve/next-nudge", headers=service_headers)

    assert served.status_code == 200 and served.json()["delivery_id"] == in_season
    clock.now = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
    out_of_season = queue(container, pid, MOUNTAIN_HIKE)
    assert real_client.get("/v1/patients/app-eve/next-nudge", headers=service_headers).status_code == 204
    assert ready_status(container, out_of_season) == "superseded"


def test_a_context_update_rechecks_ready_nudges_on_the_context_as_stored(
    real_client: TestClient, container: Container, service_headers: dict[str, str]
) -> None:
    """Born 2005-03-01: 21 on the exact date at noon on 2026-03-10, but the store keeps a year and a month, and
    every serve judges by the youngest age they allow (20). The update's re-check must judge as serves do."""
    born = {**patient_resource("app-eve", birth="2005-03-01")}
    first = bundle("app-eve", with_patient=False)
    first["entry"].insert(0, {"fullUrl": "urn:uuid:Patient-app-eve", "resource": born})
    assert real_client.put("/v1/patients/app-eve/context", json=first, headers=service_headers).status_code == 201
    pid = surrogate_of(container, "app-eve")
    coq = queue(container, pid, COQ_AU_VIN, context_version=0, ruleset_digest=container.ruleset.digest)
    second = bundle("app-eve", condition("38341003"), with_patient=False)  # hypertension: a changed context
    second["entry"].insert(0, {"fullUrl": "urn:uuid:Patient-app-eve", "resource": born})

    put = real_client.put("/v1/patients/app-eve/context", json=second, headers=service_headers)

    assert put.status_code == 200, put.text
    assert put.json()["ready_nudges"] == {"kept": 0, "superseded": 1}
    assert ready_status(container, coq) == "superseded"


def _pending_items(container: Container, patient_id: str) -> list[Any]:
    t = ReviewItemRow.__table__
    with container.uow() as uow:
        return list(uow.session.execute(select(t).where(t.c.patient_id == patient_id)).all())


def test_a_context_change_queues_a_nudge_that_now_needs_review_and_re_evaluates_it_on_the_next(
    real_client: TestClient, container: Container, service_headers: dict[str, str], put_context: PutContext,
) -> None:
    assert put_context("app-fay").status_code == 201
    pid = surrogate_of(container, "app-fay")
    walk = queue(container, pid, SHORT_WALK, context_version=1, ruleset_digest=container.ruleset.digest)

    raised = put_context("app-fay", blood_pressure(150, 112))  # EX-03: even a light walk waits for a clinician

    assert raised.json()["ready_nudges"] == {"kept": 0, "superseded": 1}
    assert ready_status(container, walk) == "superseded"
    [item] = _pending_items(container, pid)
    assert (item.nudge_id, item.status, item.context_version) == (SHORT_WALK.id, "pending", 2)
    assert any(f["action"] == "review" and f["evidence"] for f in item.fired)  # the clinician sees why
    assert [r.details["review_item"] for r in audit_records(container) if r.event_type == "queued"] == [item.id]

    # The reading was entered for the wrong patient: the item has nothing left for a clinician to decide.
    put_context("app-fay")

    [after] = _pending_items(container, pid)
    assert (after.id, after.status, after.version) == (item.id, "expired", item.version + 1)
    expired = [r for r in audit_records(container) if r.event_type == "expired"]
    assert [(r.details["review_item"], r.details["outcome"]) for r in expired] == [(item.id, "no_longer_flagged")]


def test_a_pending_item_that_becomes_urgent_on_a_new_reading_is_escalated_with_the_new_evidence(
    real_client: TestClient, container: Container, service_headers: dict[str, str], put_context: PutContext,
) -> None:
    put_context("app-gus")
    pid = surrogate_of(container, "app-gus")
    queue(container, pid, SHORT_WALK, context_version=1, ruleset_digest=container.ruleset.digest)
    put_context("app-gus", blood_pressure(150, 112))
    [routine] = _pending_items(container, pid)

    put_context("app-gus", blood_pressure(230, 130))

    [urgent] = _pending_items(container, pid)
    assert (urgent.id, urgent.status, urgent.version) == (routine.id, "pending", routine.version + 1)
    assert routine.escalation is None and urgent.escalation is not None and urgent.priority == 0
    assert urgent.fired != routine.fired  # the clinician sees the crisis reading, not the old one
    escalated = [r for r in audit_records(container) if r.event_type == "escalated"]
    assert [r.details["review_item"] for r in escalated] == [routine.id]
