"""Read a :class:`MonitorSnapshot` from the database (decisions, events, ready nudges, review items, patients).

Everything is aggregated here; no patient id leaves this module. Reads go over the reference and
current windows only (two weeks by default), a few columns at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientDecisionRow, PatientEventRow, PatientRow, ReadyNudgeRow, ReviewItemRow
from nudge_engine.monitoring.settings import MonitorSettings
from nudge_engine.monitoring.snapshot import MonitorSnapshot, Rate, Windows

DAY = timedelta(days=1)
FEATURES = ("activity_minutes_per_day", "active_day_share", "open_share", "completion_share")


def windows_at(now: datetime, settings: MonitorSettings) -> Windows:
    current = now - settings.window_days * DAY
    return Windows(now, current, current - settings.reference_days * DAY)


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _rules(flagged: list[Any] | None) -> set[str]:
    return {str(f["rule"]) for item in flagged or () for f in item.get("fired", ()) if "rule" in f}


def collect_snapshot(
    session: Session, *, now: datetime, settings: MonitorSettings, held_out: Collection[str] = ()
) -> MonitorSnapshot:
    """Aggregates over the reference and current windows ending at ``now``.

    ``held_out``: patients who get no nudges by design (holdouts); they are not counted as starved.
    """
    w = windows_at(now, settings)
    snap = MonitorSnapshot(w, days=_days(w.reference_start, now))
    _decisions(session, snap, settings, held_out)
    _events(session, snap, settings)
    _review(session, snap)
    _serving(session, snap)
    snap.last_context_update = session.scalar(select(func.max(PatientRow.context_updated_at)))
    snap.last_event = session.scalar(select(func.max(PatientEventRow.received_at))
                                     .where(PatientEventRow.received_at <= now))
    return snap


def _decisions(session: Session, snap: MonitorSnapshot, s: MonitorSettings, held_out: Collection[str]) -> None:
    w = snap.windows
    day_of = {d: i for i, d in enumerate(snap.days)}
    built = [0] * len(snap.days)
    blocked: dict[str, list[int]] = defaultdict(lambda: [0] * len(snap.days))
    review: dict[str, list[int]] = defaultdict(lambda: [0] * len(snap.days))
    scores: tuple[list[float], list[float]] = ([], [])
    latest: dict[str, tuple[datetime, bool]] = {}
    rows = session.execute(
        select(PatientDecisionRow.patient_id, PatientDecisionRow.created_at, PatientDecisionRow.outcome,
               PatientDecisionRow.chosen, PatientDecisionRow.blocked, PatientDecisionRow.review,
               PatientDecisionRow.dropped)
        .where(PatientDecisionRow.created_at >= w.reference_start, PatientDecisionRow.created_at < w.now)
    )
    for r in rows:
        i = day_of.get(r.created_at.astimezone(UTC).date())
        if i is None:
            continue
        built[i] += 1
        for rule in _rules(r.blocked):
            blocked[rule][i] += 1
        for rule in _rules(r.review):
            review[rule][i] += 1
        current = r.created_at >= w.current_start
        if r.chosen and r.chosen[0].get("score") is not None:
            scores[int(current)].append(float(r.chosen[0]["score"]))
        if current:
            eligible = r.outcome != "nothing" or any(k != "not_eligible_count" for k in (r.dropped or {}))
            if r.patient_id not in latest or latest[r.patient_id][0] < r.created_at:
                latest[r.patient_id] = (r.created_at, eligible)
    snap.patients_built = built
    snap.blocked_by_rule = dict(blocked)
    snap.review_by_rule = dict(review)
    snap.scores = (np.asarray(scores[0]), np.asarray(scores[1]))
    candidates = {pid for pid, (_, ok) in latest.items() if ok and pid not in held_out}
    since = w.now - s.starvation_days * DAY
    fed = set(session.scalars(
        select(PatientEventRow.patient_id).where(PatientEventRow.type == "delivered",
                                                 PatientEventRow.occurred_at >= since,
                                                 PatientEventRow.occurred_at < w.now).distinct()
    ))
    snap.eligible_patients = len(candidates)
    snap.starved_patients = len(candidates - fed)


def _events(session: Session, snap: MonitorSnapshot, s: MonitorSettings) -> None:
    w = snap.windows
    per: list[dict[str, dict[str, Any]]] = [defaultdict(lambda: {"minutes": 0.0, "days": set(), "delivered": 0,
                                                                 "opened": 0, "completed": 0}) for _ in range(2)]
    counts: list[defaultdict[str, int]] = [defaultdict(int), defaultdict(int)]
    for e in session.execute(
        select(PatientEventRow.patient_id, PatientEventRow.type, PatientEventRow.occurred_at,
               PatientEventRow.properties)
        .where(PatientEventRow.occurred_at >= w.reference_start, PatientEventRow.occurred_at < w.now)
    ):
        k = int(e.occurred_at >= w.current_start)
        p = per[k][e.patient_id]
        counts[k][e.type] += 1
        if e.type == "activity":
            p["minutes"] += float((e.properties or {}).get("minutes") or 0.0)
            p["days"].add(e.occurred_at.date())
        elif e.type in ("delivered", "opened", "completed"):
            p[e.type] += 1
    lengths = (s.reference_days, s.window_days)
    features: dict[str, tuple[list[float], list[float]]] = {f: ([], []) for f in FEATURES}
    for k in range(2):
        for p in per[k].values():
            features["activity_minutes_per_day"][k].append(p["minutes"] / lengths[k])
            features["active_day_share"][k].append(len(p["days"]) / lengths[k])
            if p["delivered"]:
                features["open_share"][k].append(p["opened"] / p["delivered"])
                features["completion_share"][k].append(p["completed"] / p["delivered"])
    snap.features = {f: (np.asarray(a), np.asarray(b)) for f, (a, b) in features.items()}
    snap.rates["open"] = (Rate(counts[0]["opened"], counts[0]["delivered"]),
                          Rate(counts[1]["opened"], counts[1]["delivered"]))
    snap.rates["completion"] = (Rate(counts[0]["completed"], counts[0]["delivered"]),
                                Rate(counts[1]["completed"], counts[1]["delivered"]))


def _review(session: Session, snap: MonitorSnapshot) -> None:
    w = snap.windows
    items = session.execute(
        select(ReviewItemRow.status, ReviewItemRow.created_at, ReviewItemRow.decided_at, ReviewItemRow.due_at,
               ReviewItemRow.expires_at)
        .where(ReviewItemRow.created_at < w.now, ReviewItemRow.expires_at > w.reference_start)
    ).all()

    def open_at(item: Any, t: datetime) -> bool:
        return bool(item.created_at <= t and (item.decided_at is None or item.decided_at > t) and item.expires_at > t)

    ends = [min(datetime.combine(d + DAY, time(), tzinfo=UTC), w.now) for d in snap.days]
    snap.review_backlog = [sum(1 for it in items if open_at(it, t)) for t in ends]
    pending = [it for it in items if it.status == "pending" and open_at(it, w.now)]
    snap.review_pending = len(pending)
    snap.review_overdue = sum(1 for it in pending if it.due_at < w.now)
    snap.decision_hours = np.asarray([
        (it.decided_at - it.created_at).total_seconds() / 3600 for it in items
        if it.decided_at is not None and w.current_start <= it.decided_at < w.now
    ])


def _serving(session: Session, snap: MonitorSnapshot) -> None:
    w = snap.windows
    rates = []
    for start, end in ((w.reference_start, w.reference_end), (w.current_start, w.now)):
        created = session.scalar(select(func.count()).select_from(ReadyNudgeRow)
                                 .where(ReadyNudgeRow.created_at >= start, ReadyNudgeRow.created_at < end)) or 0
        served = session.scalar(select(func.count()).select_from(ReadyNudgeRow)
                                .where(ReadyNudgeRow.created_at >= start, ReadyNudgeRow.created_at < end,
                                       ReadyNudgeRow.served_at.is_not(None), ReadyNudgeRow.served_at < w.now)) or 0
        rates.append(Rate(int(served), int(created)))
    snap.rates["serve"] = (rates[0], rates[1])
