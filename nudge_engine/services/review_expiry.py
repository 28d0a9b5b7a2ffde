"""Expire review items nobody decided in time: their nudges are never delivered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import ReadyNudgeRow, ReviewItemRow
from nudge_engine.audit.trail import AuditEvent, AuditTrail


def expire_items(session: Session, ids: list[str], *, now: datetime) -> None:
    """Mark the pending items ``ids`` expired, and whatever ready row they queued with them."""
    session.execute(
        update(ReviewItemRow)
        .where(ReviewItemRow.id.in_(ids), ReviewItemRow.status == "pending")
        .values(status="expired", decided_at=now, version=ReviewItemRow.version + 1)
    )
    # A nudge whose review expired must never be served, even if something queued it meanwhile.
    session.execute(
        update(ReadyNudgeRow)
        .where(ReadyNudgeRow.review_item_id.in_(ids), ReadyNudgeRow.status == "ready")
        .values(status="expired")
    )


def expire_overdue_reviews(session: Session, *, now: datetime, audit: AuditTrail, limit: int = 5000) -> int:
    """Mark pending items past their time-to-live expired (with audit records); returns how many."""
    overdue = session.execute(
        select(ReviewItemRow.id, ReviewItemRow.patient_id, ReviewItemRow.nudge_id, ReviewItemRow.rule_ids,
               ReviewItemRow.ruleset_digest)
        .where(ReviewItemRow.status == "pending", ReviewItemRow.expires_at <= now)
        .order_by(ReviewItemRow.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not overdue:
        return 0
    expire_items(session, [row.id for row in overdue], now=now)
    audit.append(
        session,
        [
            AuditEvent("expired", "system", patient_ref=row.patient_id, nudge_id=row.nudge_id, decision="review",
                       rule_ids=tuple(row.rule_ids or ()), ruleset_digest=row.ruleset_digest,
                       details={"review_item": row.id})
            for row in overdue
        ],
        now=now,
    )
    return len(overdue)
