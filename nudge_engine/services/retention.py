"""Retention: delete raw events and decision details past their windows, keep what the models need.

``apply_retention(container)`` is the scheduler's job. Per batch of old raw events, in one
transaction: their counts are added to ``patient_nudge_outcomes`` (per patient and nudge: delivered,
opened, dismissed, completed, activity and minutes, last delivered and completed times) and to
``event_volume_daily`` (the volume report), the events are deleted, and an audit record says how
many. Then build decision details (``patient_decisions``), finished ready-queue rows and old
refused/quarantined events are deleted past theirs. A deleted serve still inside its nudge's cooldown
is folded into ``last_delivered_at`` first: the build reads that column for cooldowns. The audit
trail is never touched: it still verifies. Patient feedback, review items and approvals are kept
(they are decisions, not history).

``raw events + patient_nudge_outcomes`` is a patient's whole history; in low-retention mode the build
personalises from the session's events and these aggregates only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.orm import PatientDecisionRow, PatientEventRow, ReadyNudgeRow
from nudge_engine.adapters.orm.feedback import EventIntakeRow, EventVolumeDailyRow, PatientNudgeOutcomeRow
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.logs import get_logger
from nudge_engine.services.delivery import SERVED_LOOKBACK
from nudge_engine.tracking.settings import DataSettings

if TYPE_CHECKING:
    from nudge_engine.bootstrap import Container

_log = get_logger(__name__)
BATCH = 5_000
COUNTED = ("delivered", "opened", "dismissed", "completed", "activity")


@dataclass
class RetentionResult:
    events_deleted: int = 0
    aggregates_touched: int = 0
    decisions_deleted: int = 0
    ready_deleted: int = 0
    intake_deleted: int = 0
    batches: int = 0
    cutoffs: dict[str, datetime] = field(default_factory=dict)


@dataclass
class _Fold:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    minutes: int = 0
    last_delivered: datetime | None = None
    last_completed: datetime | None = None


def apply_retention(container: Container, *, data: DataSettings | None = None) -> RetentionResult:
    """The scheduler job: fold and delete old raw events, delete old decision details. Audited per transaction."""
    settings = data or DataSettings()
    now = container.clock()
    result = RetentionResult(cutoffs={
        "events": now - settings.event_window,
        "decisions": now - settings.decision_window,
        "intake": now - settings.quarantine_window,
    })
    while True:
        with container.uow() as uow:
            deleted, touched = fold_old_events(uow.session, before=result.cutoffs["events"], now=now)
            if deleted == 0:
                break
            container.audit.append(uow.session, [AuditEvent(
                EventType.RETENTION_APPLIED, "system",
                details={"scope": "events", "deleted": deleted, "aggregates": touched,
                         "window_days": settings.event_window.days, "low_retention": settings.low_retention},
            )], now=now)
            uow.commit()
        result.events_deleted += deleted
        result.aggregates_touched += touched
        result.batches += 1
        if deleted < BATCH:
            break
    with container.uow() as uow:
        s = uow.session
        result.decisions_deleted = _count(s.execute(
            delete(PatientDecisionRow).where(PatientDecisionRow.created_at < result.cutoffs["decisions"])))
        # Finished ready-queue rows: never those the serve-time caps still count (a local week and a day).
        # A serve inside its nudge's cooldown is folded first, so later builds still hold the cooldown.
        ready_cutoff = min(result.cutoffs["decisions"], now - SERVED_LOOKBACK)
        finished = (ReadyNudgeRow.created_at < ready_cutoff) & or_(
            ReadyNudgeRow.status != "ready", ReadyNudgeRow.expires_at < ready_cutoff)
        serves_folded = fold_serves(s, finished, since=now - container.catalog.longest_cooldown, now=now)
        result.ready_deleted = _count(s.execute(delete(ReadyNudgeRow).where(finished)))
        result.intake_deleted = _count(s.execute(
            delete(EventIntakeRow).where(EventIntakeRow.received_at < result.cutoffs["intake"])))
        container.audit.append(s, [AuditEvent(
            EventType.RETENTION_APPLIED, "system",
            details={"scope": "decisions", "decisions": result.decisions_deleted, "ready": result.ready_deleted,
                     "intake": result.intake_deleted, "serves_folded": serves_folded,
                     "window_days": settings.decision_window.days,
                     "low_retention": settings.low_retention},
        )], now=now)
        uow.commit()
    _log.info("retention_applied", events=result.events_deleted, decisions=result.decisions_deleted,
              ready=result.ready_deleted, intake=result.intake_deleted, batches=result.batches)
    return result


def fold_old_events(session: Session, *, before: datetime, now: datetime, limit: int = BATCH) -> tuple[int, int]:
    """Fold up to ``limit`` raw events older than ``before`` into the aggregates and delete them.

    Returns (events deleted, aggregate rows touched). Runs in the caller's transaction.
    """
    e = PatientEventRow
    rows = session.execute(
        select(e.id, e.patient_id, e.type, e.nudge_id, e.occurred_at, e.properties)
        .where(e.occurred_at < before).order_by(e.occurred_at, e.id).limit(limit)
    ).all()
    if not rows:
        return 0, 0
    folds: dict[tuple[str, str], _Fold] = defaultdict(_Fold)
    days: dict[tuple[date, str], list[Any]] = defaultdict(list)
    for r in rows:
        f = folds[str(r.patient_id), r.nudge_id or ""]
        if r.type in f.counts:
            f.counts[r.type] += 1
        if r.type == "activity":
            minutes = (r.properties or {}).get("minutes")
            if isinstance(minutes, int) and not isinstance(minutes, bool):
                f.minutes += minutes
        if r.type == "delivered":
            f.last_delivered = _later(f.last_delivered, r.occurred_at)
        if r.type == "completed":
            f.last_completed = _later(f.last_completed, r.occurred_at)
        days[r.occurred_at.date(), str(r.type)[:32]].append(r.patient_id)
    _add_outcomes(session, folds, now)
    _add_volume(session, days)
    ids = [r.id for r in rows]
    for chunk in chunked(ids):
        session.execute(delete(e).where(e.id.in_(chunk)))
    return len(rows), len(folds)


def fold_serves(session: Session, finished: ColumnElement[bool], *, since: datetime, now: datetime) -> int:
    """Fold the serves at or after ``since`` among the ``finished`` ready-queue rows into the aggregates.

    A serve counts as the nudge's last delivery (``last_delivered_at``), whether or not the app reported
    the delivery: cooldowns count it, and no delivery count changes. Returns the aggregate rows touched.
    """
    q = ReadyNudgeRow
    folds: dict[tuple[str, str], _Fold] = defaultdict(_Fold)
    for patient_id, nudge_id, served_at in session.execute(
        select(q.patient_id, q.nudge_id, func.max(q.served_at))
        .where(finished, q.status == "served", q.served_at >= since)
        .group_by(q.patient_id, q.nudge_id)
    ):
        folds[str(patient_id), nudge_id].last_delivered = served_at
    _add_outcomes(session, folds, now)
    return len(folds)


def _add_outcomes(session: Session, folds: dict[tuple[str, str], _Fold], now: datetime) -> None:
    o = PatientNudgeOutcomeRow
    patient_ids = sorted({p for p, _ in folds})
    existing: dict[tuple[str, str], PatientNudgeOutcomeRow] = {}
    for chunk in chunked(patient_ids):
        for row in session.scalars(select(o).where(o.patient_id.in_(chunk))):
            existing[row.patient_id, row.nudge_id] = row
    for (patient_id, nudge_id), f in folds.items():
        found = existing.get((patient_id, nudge_id))
        if found is not None:
            row = found
        else:
            row = o(patient_id=patient_id, nudge_id=nudge_id, delivered=0, opened=0, dismissed=0, completed=0,
                    activity=0, activity_minutes=0, updated_at=now)
            session.add(row)
        row.delivered += f.counts["delivered"]
        row.opened += f.counts["opened"]
        row.dismissed += f.counts["dismissed"]
        row.completed += f.counts["completed"]
        row.activity += f.counts["activity"]
        row.activity_minutes += f.minutes
        row.last_delivered_at = _later(row.last_delivered_at, f.last_delivered)
        row.last_completed_at = _later(row.last_completed_at, f.last_completed)
        row.updated_at = now
    session.flush()


def _add_volume(session: Session, days: dict[tuple[date, str], list[Any]]) -> None:
    v = EventVolumeDailyRow
    for (day, type_), patients in days.items():
        row = session.get(v, (day, type_))
        if row is None:
            session.add(v(day=day, type=type_, count=len(patients), patients=len(set(patients))))
        else:
            row.count += len(patients)
            row.patients = max(row.patients, len(set(patients)))
    session.flush()


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def outcome_totals(session: Session, patient_ids: Sequence[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(patient, nudge) -> (delivered, completed) folded by retention: add the raw events still stored."""
    o = PatientNudgeOutcomeRow
    out: dict[tuple[str, str], tuple[int, int]] = {}
    ids = list(patient_ids)
    for chunk in chunked(ids):
        for r in session.execute(select(o.patient_id, o.nudge_id, o.delivered, o.completed)
                                 .where(o.patient_id.in_(chunk), o.nudge_id != "")):
            out[str(r.patient_id), str(r.nudge_id)] = (int(r.delivered), int(r.completed))
    return out
