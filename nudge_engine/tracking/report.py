"""Event volume and refusal rates by type, for the monitoring report, with small cells suppressed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientEventRow
from nudge_engine.adapters.orm.feedback import EventIntakeRow, EventVolumeDailyRow

DEFAULT_MIN_CELL = 11


@dataclass(frozen=True, slots=True)
class EventVolume:
    """One event type over the period. Counts are None when the cell is suppressed (too few patients)."""

    type: str
    accepted: int | None  # stored raw events, plus those retention has since folded into aggregates
    refused: int | None
    quarantined: int | None
    refusal_rate: float | None  # (refused + quarantined) / everything received
    suppressed: bool


def event_volume(
    session: Session, since: datetime, until: datetime | None = None, *, min_cell: int = DEFAULT_MIN_CELL
) -> list[EventVolume]:
    """Events received per type between ``since`` and ``until`` (by ``occurred_at``), and how many were refused.

    A type whose figures come from fewer than ``min_cell`` distinct patients is suppressed (counts None).
    Folded days count whole (``event_volume_daily`` is per UTC day).
    """
    e, d, q = PatientEventRow, EventVolumeDailyRow, EventIntakeRow
    raw_q = select(e.type, func.count(), func.count(e.patient_id.distinct())).where(e.occurred_at >= since)
    issue_q = select(q.type, q.outcome, func.count(), func.count(q.patient_id.distinct())).where(
        q.occurred_at >= since)
    folded_q = select(d.type, func.sum(d.count), func.max(d.patients)).where(d.day >= since.date())
    if until is not None:
        raw_q = raw_q.where(e.occurred_at < until)
        issue_q = issue_q.where(q.occurred_at < until)
        folded_q = folded_q.where(d.day <= until.date())
    accepted: dict[str, int] = {}
    patients: dict[str, int] = {}
    for type_, count, people in session.execute(raw_q.group_by(e.type)):
        accepted[type_] = int(count)
        patients[type_] = int(people)
    for type_, count, people in session.execute(folded_q.group_by(d.type)):
        accepted[type_] = accepted.get(type_, 0) + int(count or 0)
        patients[type_] = max(patients.get(type_, 0), int(people or 0))
    issues: dict[tuple[str, str], int] = {}
    for type_, outcome, count, people in session.execute(issue_q.group_by(q.type, q.outcome)):
        issues[type_, outcome] = int(count)
        patients[type_] = max(patients.get(type_, 0), int(people))
    out: list[EventVolume] = []
    for type_ in sorted(set(accepted) | {t for t, _ in issues}):
        ok = accepted.get(type_, 0)
        refused, held = issues.get((type_, "refused"), 0), issues.get((type_, "quarantined"), 0)
        total = ok + refused + held
        if patients.get(type_, 0) < min_cell:
            out.append(EventVolume(type_, None, None, None, None, True))
        else:
            out.append(EventVolume(type_, ok, refused, held, (refused + held) / total if total else 0.0, False))
    return out
