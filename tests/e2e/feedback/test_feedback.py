"""Patients flag nudges and clinicians report rules, through the API; every flag acts at once and is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from nudge_engine.adapters.orm import PatientPreferenceRow, ReadyNudgeRow, ReviewItemRow, new_id
from nudge_engine.bootstrap import Container
from nudge_engine.services.feedback import rule_report_counts, suppressed_pairs
from tests.e2e.api.kit import NOON, CatalogNudge, audit_records, ready_status, seed_ready, surrogate_of

Headers = dict[str, str]
WALK = CatalogNudge("walk-10min", "exercise", "light")
WATER = CatalogNudge("water-glass-morning", "hydration")


def _serve(client: TestClient, container: Container, headers: Headers, nudge: CatalogNudge) -> str:
    pid = surrogate_of(container, "app-ada")
    seed_ready(container, pid, nudge, score=5.0)
    res = client.get("/v1/patients/app-ada/next-nudge", headers=headers)
    assert res.status_code == 200 and res.json()["nudge"]["id"] == nudge.id, res.text
    return pid


def _flag(client: TestClient, headers: Headers, kind: str, nudge_id: str | None = None) -> dict[str, object]:
    body = {"kind": kind, **({"nudge_id": nudge_id} if nudge_id else {})}
    res = client.post("/v1/patients/app-ada/feedback", json=body, headers=headers)
    assert res.status_code == 201, res.text
    result: dict[str, object] = res.json()
    return result


def _review_items(container: Container) -> list[tuple[str, str, list[str], int]]:
    with container.uow() as uow:
        return [(r.nudge_id, r.status, list(r.rule_ids), r.priority)
                for r in uow.session.scalars(select(ReviewItemRow))]


def test_an_unsafe_for_me_flag_suppresses_the_nudge_and_creates_a_review_item(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    pid = _serve(client, container, service_headers, WALK)
    again = seed_ready(container, pid, WALK, score=9.0)  # the next build queued it again
    seed_ready(container, pid, WATER, score=1.0)

    answer = _flag(client, service_headers, "unsafe_for_me", WALK.id)

    assert answer["suppressed"] is True and answer["review_requested"] is True
    assert ready_status(container, again) == "superseded"
    assert _review_items(container) == [(WALK.id, "pending", ["PATIENT-FLAG"], 1)]
    nxt = client.get("/v1/patients/app-ada/next-nudge", headers=service_headers)
    assert nxt.json()["nudge"]["id"] == WATER.id
    with container.uow() as uow:
        assert suppressed_pairs(uow.session, [pid]) == {(pid, WALK.id)}
    kinds = [r.event_type for r in audit_records(container)]
    assert {"feedback_received", "queued", "superseded"} <= set(kinds)


def test_a_second_unsafe_flag_on_the_same_nudge_joins_the_open_review_item(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    _serve(client, container, service_headers, WALK)
    _flag(client, service_headers, "unsafe_for_me", WALK.id)
    _flag(client, service_headers, "unsafe_for_me", WALK.id)

    assert len(_review_items(container)) == 1


def test_a_clinicians_approval_of_the_flagged_nudge_does_not_serve_it_over_the_patients_flag(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    pid = _serve(client, container, service_headers, WALK)
    _flag(client, service_headers, "unsafe_for_me", WALK.id)
    with container.uow() as uow:
        item = uow.session.scalars(select(ReviewItemRow.id)).one()
    approved = seed_ready(container, pid, WALK, score=10.0, review_item_id=item)  # what an approval enqueues

    assert client.get("/v1/patients/app-ada/next-nudge", headers=service_headers).status_code == 204
    assert ready_status(container, approved) == "superseded"


def test_not_right_for_me_suppresses_without_asking_a_clinician(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    pid = _serve(client, container, service_headers, WALK)
    again = seed_ready(container, pid, WALK)

    answer = _flag(client, service_headers, "not_right_for_me", WALK.id)

    assert (answer["suppressed"], answer["review_requested"]) == (True, False)
    assert ready_status(container, again) == "superseded"
    assert _review_items(container) == []


def test_too_many_lowers_that_patients_caps_step_by_step(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")

    first = _flag(client, service_headers, "too_many")
    second = _flag(client, service_headers, "too_many")

    assert first["caps"] == {"max_per_day": 1, "max_per_week": 6}
    assert second["caps"] == {"max_per_day": 1, "max_per_week": 5}
    with container.uow() as uow:
        prefs = uow.session.get(PatientPreferenceRow, surrogate_of(container, "app-ada"))
        assert prefs is not None and (prefs.max_per_day, prefs.max_per_week) == (1, 5)
    assert [r.details["cause"] for r in audit_records(container) if r.event_type == "preferences_changed"] == [
        "too_many", "too_many"]


def test_a_flag_on_a_nudge_never_served_to_the_patient_answers_like_a_missing_one(
    client: TestClient, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    res = client.post("/v1/patients/app-ada/feedback", json={"kind": "unsafe_for_me", "nudge_id": WALK.id},
                      headers=service_headers)
    assert res.status_code == 404
    assert client.post("/v1/patients/app-nobody/feedback", json={"kind": "too_many"},
                       headers=service_headers).status_code == 404


def test_a_flag_that_must_name_a_nudge_is_refused_without_one(
    client: TestClient, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    res = client.post("/v1/patients/app-ada/feedback", json={"kind": "unsafe_for_me"}, headers=service_headers)
    assert res.status_code == 422
    assert any("nudge_id" in item["msg"] for item in res.json()["detail"])


def test_clinicians_report_rules_and_the_reports_are_counted_per_rule_and_nudge(
    client: TestClient, container: Container, service_headers: Headers, clinician_headers: Headers,
    enrol: Callable[[str], None],
) -> None:
    report = {"rule_id": "EX-03", "nudge_id": WALK.id, "kind": "fired_wrongly", "reason_code": "bp-controlled"}
    assert client.post("/v1/review/rule-reports", json=report, headers=service_headers).status_code == 403
    for body in (report, report, {**report, "kind": "failed_to_fire"}, {**report, "rule_id": "HF-01"}):
        res = client.post("/v1/review/rule-reports", json=body, headers=clinician_headers)
        assert res.status_code == 201, res.text

    with container.uow() as uow:
        counts = rule_report_counts(uow.session, NOON - timedelta(days=1))
    assert [(c.rule_id, c.nudge_id, c.fired_wrongly, c.failed_to_fire, c.suppressed) for c in counts] == [
        ("EX-03", WALK.id, 2, 1, False), ("HF-01", WALK.id, 1, 0, False),
    ]
    assert next(r.rule_ids for r in audit_records(container) if r.event_type == "rule_reported") == ["EX-03"]


def test_rule_report_counts_tied_to_fewer_patients_than_the_threshold_are_suppressed(
    client: TestClient, container: Container, clinician_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    item = new_id()
    with container.uow() as uow:
        uow.session.execute(insert(ReviewItemRow), [{
            "id": item, "patient_id": pid, "nudge_id": WALK.id, "status": "pending", "priority": 2,
            "rule_ids": ["EX-03"], "fired": [], "ruleset_digest": "sha256:x", "context_version": 1,
            "created_at": NOON, "due_at": NOON + timedelta(days=1), "expires_at": NOON + timedelta(days=3),
            "version": 0,
        }])
        uow.commit()
    body = {"rule_id": "EX-03", "nudge_id": WALK.id, "kind": "fired_wrongly", "review_item_id": item}
    assert client.post("/v1/review/rule-reports", json=body, headers=clinician_headers).status_code == 201

    with container.uow() as uow:
        small = rule_report_counts(uow.session, NOON - timedelta(days=1))
        shown = rule_report_counts(uow.session, NOON - timedelta(days=1), min_cell=1)
    assert [(c.fired_wrongly, c.patients, c.suppressed) for c in small] == [(None, None, True)]
    assert [(c.fired_wrongly, c.patients, c.suppressed) for c in shown] == [(1, 1, False)]


def test_a_rule_report_about_a_missing_review_item_is_not_found(
    client: TestClient, clinician_headers: Headers
) -> None:
    body = {"rule_id": "EX-03", "nudge_id": WALK.id, "kind": "fired_wrongly", "review_item_id": "0" * 32}
    assert client.post("/v1/review/rule-reports", json=body, headers=clinician_headers).status_code == 404


def test_flags_never_touch_other_patients_ready_nudges(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[[str], None]
) -> None:
    enrol("app-ada")
    enrol("app-bo")
    bo = seed_ready(container, surrogate_of(container, "app-bo"), WALK)
    _serve(client, container, service_headers, WALK)

    _flag(client, service_headers, "not_right_for_me", WALK.id)

    assert ready_status(container, bo) == "ready"
    with container.uow() as uow:
        assert uow.session.scalar(select(ReadyNudgeRow.status).where(ReadyNudgeRow.id == bo)) == "ready"
