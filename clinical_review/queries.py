"""Read side of the queue: listing with filters, order and paging; counts; rows to summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from clinical_review.model import Fired, ItemSummary, QueueCounts, QueuePage, QueueQuery, ReviewStatus, SortKey
from nudge_engine.adapters.orm import ReviewItemRow
from nudge_engine.domain.nudge import Nudge

R = ReviewItemRow


def rule_filter(rule: str) -> ColumnElement[bool]:
    """Items whose rule ids contain ``rule`` (portable: the JSON list's text, LIKE-escaped)."""
    escaped = rule.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace('"', "")
    return cast(R.rule_ids, String).like(f'%"{escaped}"%', escape="\\")


def _filtered(stmt: Select[Any], query: QueueQuery, now: datetime) -> Select[Any]:
    if query.status is not None:
        stmt = stmt.where(R.status == query.status.value)
    if query.rule:
        stmt = stmt.where(rule_filter(query.rule))
    if query.priority is not None:
        stmt = stmt.where(R.priority == query.priority)
    if query.older_than_hours is not None:
        stmt = stmt.where(R.created_at <= now - timedelta(hours=query.older_than_hours))
    if query.newer_than_hours is not None:
        stmt = stmt.where(R.created_at > now - timedelta(hours=query.newer_than_hours))
    return stmt


def _order(query: QueueQuery) -> list[Any]:
    key = SortKey(query.sort.lstrip("-"))
    desc = query.sort.startswith("-")
    columns: dict[SortKey, list[Any]] = {
        SortKey.PRIORITY: [R.priority, R.due_at],
        SortKey.DUE: [R.due_at],
        SortKey.CREATED: [R.created_at],
        SortKey.DECIDED: [R.decided_at],
    }
    order = [c.desc() if desc else c.asc() for c in columns[key]]
    return [*order, R.id.asc()]  # a stable order for paging


def list_items(session: Session, query: QueueQuery, *, now: datetime, nudges: Mapping[str, Nudge]) -> QueuePage:
    total = session.scalar(_filtered(select(func.count()).select_from(R), query, now)) or 0
    rows = session.scalars(
        _filtered(select(R), query, now).order_by(*_order(query))
        .offset((query.page - 1) * query.per_page).limit(query.per_page)
    ).all()
    return QueuePage(tuple(summary(r, nudges) for r in rows), int(total), query.page, query.per_page)


def counts(session: Session, *, now: datetime) -> QueueCounts:
    by_status = {s.value: 0 for s in ReviewStatus}
    for status, n in session.execute(select(R.status, func.count()).group_by(R.status)):
        by_status[str(status)] = int(n)
    per_rule: Counter[str] = Counter()
    overdue = urgent = 0
    for rule_ids, due_at, priority in session.execute(
        select(R.rule_ids, R.due_at, R.priority).where(R.status == ReviewStatus.PENDING.value)
    ):
        per_rule.update(rule_ids or ())
        overdue += due_at <= now
        urgent += priority == 0
    return QueueCounts(by_status, dict(sorted(per_rule.items())), overdue, urgent)


def _fired(raw: Any) -> tuple[Fired, ...]:
    out: list[Fired] = []
    for f in raw or ():
        if isinstance(f, Mapping):
            out.append(Fired(str(f.get("rule", "")), str(f.get("action", "")),
                             tuple(str(e) for e in f.get("evidence", ()) or ())))
    return tuple(out)


def summary(row: ReviewItemRow, nudges: Mapping[str, Nudge]) -> ItemSummary:
    nudge = nudges.get(row.nudge_id)
    return ItemSummary(
        id=row.id, patient_ref=row.patient_id, nudge_id=row.nudge_id, nudge_title=nudge.title if nudge else None,
        status=ReviewStatus(row.status), priority=row.priority, rule_ids=tuple(row.rule_ids or ()),
        fired=_fired(row.fired), escalation=row.escalation, created_at=row.created_at, due_at=row.due_at,
        expires_at=row.expires_at, decided_at=row.decided_at, decided_by=row.decided_by, reason_code=row.reason_code,
        comment=row.comment, scope_days=row.scope_days, version=row.version,
    )
