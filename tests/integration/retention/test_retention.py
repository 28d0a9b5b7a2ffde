"""Retention on SQLite and PostgreSQL: old raw events folded into aggregates and deleted, old decision
details deleted, the audit trail untouched (it still verifies against a checkpoint taken before)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from nudge_engine.adapters.orm import (
    AuditRecordRow,
    PatientDecisionRow,
    PatientEventRow,
    PatientRow,
    ReadyNudgeRow,
    ReviewItemRow,
    new_id,
)
from nudge_engine.adapters.orm.feedback import EventVolumeDailyRow, PatientFeedbackRow, PatientNudgeOutcomeRow
from nudge_engine.bootstrap import Container
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.retention import apply_retention
from nudge_engine.tracking.report import event_volume
from nudge_engine.tracking.settings import DataSettings, RetentionMode
from tests.support.world import NOW, make_container, seed_cohort

WALK = "ex-walk-10min"


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = make_container(database_url, tmp_path)
    seed_cohort(c, 12)
    yield c
    c.dispose()


def _first_patient(c: Container) -> str:
    with c.uow() as uow:
        return str(uow.session.scalars(select(PatientRow.id).order_by(PatientRow.id)).first())


def _add_events(c: Container, patient_id: str, *ages_and_types: tuple[int, str]) -> None:
    with c.uow() as uow:
        uow.session.execute(insert(PatientEventRow), [
            {"id": new_id(), "patient_id": patient_id, "type": type_, "nudge_id": None if type_ == "activity" else WALK,
             "session_id": None, "occurred_at": NOW - timedelta(days=days), "received_at": NOW - timedelta(days=days),
             "properties": {"minutes": 20} if type_ == "activity" else {}, "idempotency_key": None, "response": {}}
            for days, type_ in ages_and_types
        ])
        uow.commit()


def _oldest_event_age(c: Container) -> timedelta | None:
    with c.uow() as uow:
        oldest = uow.session.scalar(select(func.min(PatientEventRow.occurred_at)))
    return NOW - oldest if oldest is not None else None


def _outcome(c: Container, patient_id: str, nudge_id: str) -> tuple[int, ...] | None:
    """(delivered, completed, activity, activity minutes, last delivered epoch seconds) folded so far."""
    with c.uow() as uow:
        row = uow.session.get(PatientNudgeOutcomeRow, (patient_id, nudge_id))
        if row is None:
            return None
        last = int(row.last_delivered_at.timestamp()) if row.last_delivered_at else -1
        return row.delivered, row.completed, row.activity, row.activity_minutes, last


def _retention_details(c: Container, scope: str) -> dict[str, object]:
    """The details of the last retention audit record of ``scope``."""
    t = AuditRecordRow.__table__
    with c.uow() as uow:
        details = uow.session.scalars(select(t.c.details).where(t.c.event_type == "retention_applied")
                                      .order_by(t.c.seq.desc())).all()
    return next(d for d in details if d["scope"] == scope)


def _checkpoint_then_verify(c: Container) -> None:
    with c.uow() as uow:
        c.audit.checkpoint(uow.session, now=NOW - timedelta(minutes=1))
        uow.commit()


def test_after_the_retention_job_no_raw_event_older_than_the_window_remains_and_audit_verify_passes(
    container: Container,
) -> None:
    patient = _first_patient(container)
    _add_events(container, patient, (200, "delivered"), (199, "completed"), (120, "delivered"), (95, "activity"),
                (10, "delivered"))
    _checkpoint_then_verify(container)

    result = apply_retention(container, data=DataSettings(event_retention_days=90))

    oldest = _oldest_event_age(container)
    assert oldest is not None and oldest <= timedelta(days=90)
    assert result.events_deleted >= 4
    with container.uow() as uow:
        verified = container.audit.verify(uow.session)
    assert verified.ok, verified.reason
    assert verified.checkpoints_checked >= 1
    assert _outcome(container, patient, WALK) == (2, 1, 0, 0, int((NOW - timedelta(days=120)).timestamp()))
    assert _outcome(container, patient, "") == (0, 0, 1, 20, -1)


def test_the_volume_report_still_counts_events_retention_folded(container: Container) -> None:
    patient = _first_patient(container)
    _add_events(container, patient, (100, "delivered"), (100, "delivered"), (5, "delivered"))
    since = NOW - timedelta(days=150)
    with container.uow() as uow:
        before = {v.type: v.accepted for v in event_volume(uow.session, since, min_cell=1)}

    apply_retention(container, data=DataSettings(event_retention_days=30))

    with container.uow() as uow:
        after = {v.type: v.accepted for v in event_volume(uow.session, since, min_cell=1)}
        folded_days = uow.session.scalar(select(func.count()).select_from(EventVolumeDailyRow))
    assert folded_days
    assert after == before


def test_running_the_job_again_deletes_and_counts_nothing_more(container: Container) -> None:
    patient = _first_patient(container)
    _add_events(container, patient, (300, "delivered"), (300, "completed"))
    settings = DataSettings(event_retention_days=60)
    apply_retention(container, data=settings)
    first = _outcome(container, patient, WALK)

    again = apply_retention(container, data=settings)

    assert first is not None and first[:2] == (1, 1)
    assert _outcome(container, patient, WALK) == first
    assert again.events_deleted == 0


def test_low_retention_mode_stores_no_event_or_decision_detail_older_than_its_window(container: Container) -> None:
    patient = _first_patient(container)
    _add_events(container, patient, (20, "delivered"), (15, "opened"), (13, "completed"))
    with container.uow() as uow:
        uow.session.execute(insert(PatientDecisionRow), [
            {"id": new_id(), "patient_id": patient, "created_at": NOW - timedelta(days=days), "outcome": "ready",
             "chosen": [], "review": [], "blocked": [], "dropped": {}, "segments": [], "ruleset_digest": "sha256:x",
             "context_version": 1}
            for days in (30, 3)
        ])
        uow.session.execute(insert(ReadyNudgeRow), [
            {"id": new_id(), "patient_id": patient, "nudge_id": WALK, "status": "served", "score": 1.0, "caution": [],
             "context_version": 1, "ruleset_digest": "sha256:x", "created_at": NOW - timedelta(days=30),
             "expires_at": NOW - timedelta(days=29), "served_at": NOW - timedelta(days=30)},
        ])
        uow.commit()
    low = DataSettings(retention_mode=RetentionMode.LOW)

    apply_retention(container, data=low)

    oldest = _oldest_event_age(container)
    assert oldest is None or oldest <= low.event_window
    with container.uow() as uow:
        s = uow.session
        decisions = s.scalars(select(PatientDecisionRow.created_at)).all()
        ready = s.scalars(select(ReadyNudgeRow.created_at)).all()
        verified = container.audit.verify(s)
    assert all(NOW - at <= low.decision_window for at in decisions)
    assert all(NOW - at <= low.decision_window for at in ready)
    assert verified.ok, verified.reason


def test_retention_keeps_patient_flags_and_review_items(container: Container) -> None:
    patient = _first_patient(container)
    with container.uow() as uow:
        uow.session.execute(insert(PatientFeedbackRow), [{
            "id": new_id(), "patient_id": patient, "nudge_id": WALK, "kind": "not_right_for_me",
            "created_at": NOW - timedelta(days=900), "lifted_at": None,
        }])
        uow.session.execute(insert(ReviewItemRow), [{
            "id": new_id(), "patient_id": patient, "nudge_id": WALK, "status": "rejected", "priority": 2,
            "rule_ids": ["EX-03"], "fired": [], "ruleset_digest": "sha256:x", "context_version": 1,
            "created_at": NOW - timedelta(days=900), "due_at": NOW - timedelta(days=899),
            "expires_at": NOW - timedelta(days=897), "version": 1,
        }])
        uow.commit()

    apply_retention(container, data=DataSettings(retention_mode=RetentionMode.LOW))

    with container.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(PatientFeedbackRow)) == 1
        assert uow.session.scalar(select(func.count()).select_from(ReviewItemRow)) == 1


@pytest.mark.parametrize("past", ["delivered event", "served ready row"])
def test_a_delivery_or_serve_low_retention_deleted_still_holds_its_nudges_cooldown_in_later_builds(
    container: Container, past: str,
) -> None:
    scuba = "ex-scuba-taster"  # open to every programme and segment, cooldown 30 days
    assert container.catalog.cooldown_s[container.catalog.index[scuba]] == 30 * 86400
    at = NOW - timedelta(days=20)  # inside the cooldown, outside low retention's 14 days
    with container.uow() as uow:
        patients = uow.session.scalars(select(PatientRow.id)).all()
        if past == "delivered event":
            uow.session.execute(insert(PatientEventRow), [{
                "id": new_id(), "patient_id": p, "type": "delivered", "nudge_id": scuba, "session_id": None,
                "occurred_at": at, "received_at": at, "properties": {}, "idempotency_key": None, "response": {},
            } for p in patients])
        else:  # served, and the app never reported the delivery
            uow.session.execute(insert(ReadyNudgeRow), [{
                "id": new_id(), "patient_id": p, "nudge_id": scuba, "status": "served", "score": 1.0, "caution": [],
                "context_version": 1, "ruleset_digest": "sha256:x", "created_at": at,
                "expires_at": at + timedelta(days=1), "served_at": at,
            } for p in patients])
        uow.commit()

    apply_retention(container, data=DataSettings(retention_mode=RetentionMode.LOW))
    summary = build_cycle(container, worker="t").run()

    with container.uow() as uow:
        raw_events = uow.session.scalar(select(func.count()).select_from(PatientEventRow).where(
            PatientEventRow.nudge_id == scuba))
        served_rows = uow.session.scalar(select(func.count()).select_from(ReadyNudgeRow).where(
            ReadyNudgeRow.nudge_id == scuba, ReadyNudgeRow.status == "served"))
        decisions = uow.session.execute(select(
            PatientDecisionRow.chosen, PatientDecisionRow.dropped, PatientDecisionRow.blocked,
            PatientDecisionRow.review,
        ).where(PatientDecisionRow.cycle_id == summary.cycle_id)).all()
    assert raw_events == served_rows == 0
    assert all(_outcome(container, p, scuba) is not None for p in patients)
    assert _retention_details(container, "decisions")["serves_folded"] == (
        len(patients) if past == "served ready row" else 0)
    planned = [d for d in decisions if scuba in {c["nudge"] for c in [*d.chosen, *d.blocked, *d.review]}]
    cooling = [d for d in decisions if scuba in d.dropped.get("cooldown", [])]
    later_reasons = [d for d in decisions if any(scuba in d.dropped.get(r, []) for r in ("capped", "quiet_hours"))]
    assert planned == [] and later_reasons == []
    assert len(cooling) >= len(patients) // 2  # all but those opted out of exercise or otherwise ineligible
