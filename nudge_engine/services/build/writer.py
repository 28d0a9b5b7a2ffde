"""Store one shard's patient outcomes: decisions, the ready queue, review items, audit records.

Runs inside the shard's unit of work, so a shard is stored completely or not at all. Writes are
keyed by (cycle, patient): a shard processed twice (a worker that died after committing, then
re-leased) stores nothing twice.

The ready queue is reconciled, not appended: a nudge already ready for a patient stays as it is,
nudges no longer chosen are superseded, new picks are inserted. Running the same cycle inputs
twice therefore leaves the queue unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import bulk_insert
from nudge_engine.adapters.orm import (
    ApprovalScopeRow,
    PatientDecisionRow,
    ReadyNudgeRow,
    ReviewItemRow,
    new_id,
)
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from nudge_engine.services.approvals import reviewed_rules
from nudge_engine.services.build.outcomes import FlaggedNudge, PatientOutcome


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    ready_ttl: timedelta = timedelta(hours=36)
    review_sla: timedelta = timedelta(hours=24)
    review_sla_urgent: timedelta = timedelta(hours=2)
    review_ttl: timedelta = timedelta(days=3)
    max_pending_reviews: int = 1  # per patient, across cycles: clinicians' time is the scarce resource


@dataclass
class WriteCounts:
    patients: int = 0
    ready_inserted: int = 0
    ready_kept: int = 0
    ready_superseded: int = 0
    review_created: int = 0
    review_auto_approved: int = 0
    skipped_already_built: int = 0


@dataclass(frozen=True, slots=True)
class PreparedOutcomes:
    """A shard's decision rows and 'built' audit events, made before the write transaction begins."""

    outcomes: Sequence[PatientOutcome]
    decision_ids: dict[str, str]  # by patient
    decision_rows: dict[str, dict[str, Any]]
    built_events: dict[str, AuditEvent]


def prepare_outcomes(
    outcomes: Sequence[PatientOutcome], *, cycle_id: str, now: datetime, ruleset_digest: str, model_version: str | None
) -> PreparedOutcomes:
    """Everything about a shard's outcomes that needs no database: built outside the write lock."""
    decision_ids = {o.patient_id: new_id() for o in outcomes}
    rows = {o.patient_id: _decision_row(o, decision_ids[o.patient_id], cycle_id=cycle_id, now=now,
                                        digest=ruleset_digest, model_version=model_version) for o in outcomes}
    events = {o.patient_id: _built_event(o, ruleset_digest, model_version) for o in outcomes}
    return PreparedOutcomes(outcomes, decision_ids, rows, events)


def write_outcomes(
    session: Session,
    prepared: PreparedOutcomes,
    *,
    cycle_id: str,
    now: datetime,
    ruleset_digest: str,
    audit: AuditTrail,
    policy: QueuePolicy = QueuePolicy(),
    content: Mapping[str, str] | None = None,
) -> WriteCounts:
    """Store ``prepared``; ``content`` maps a nudge id to the digest of the content its decision read
    (``domain.nudge.guarded_digest``), recorded with each queued row (a nudge missing from it: none, so its
    serve decides it again)."""
    counts = WriteCounts()
    content = content or {}
    outcomes = prepared.outcomes
    if not outcomes:
        return counts
    ids = [o.patient_id for o in outcomes]
    already = set(
        session.scalars(
            select(PatientDecisionRow.patient_id).where(
                PatientDecisionRow.cycle_id == cycle_id, PatientDecisionRow.patient_id.in_(ids)
            )
        )
    )
    todo = [o for o in outcomes if o.patient_id not in already]
    counts.skipped_already_built = len(outcomes) - len(todo)
    if not todo:
        return counts
    decision_ids = prepared.decision_ids
    bulk_insert(session, PatientDecisionRow, [prepared.decision_rows[o.patient_id] for o in todo],
                ignore_conflicts=True)
    counts.patients = len(todo)
    events: list[AuditEvent] = []
    approved = _reconcile_ready(
        session, todo, decision_ids, cycle_id=cycle_id, now=now, digest=ruleset_digest, policy=policy, counts=counts,
        content=content,
    )
    events.extend(_review_items(
        session, todo, decision_ids, cycle_id=cycle_id, now=now, digest=ruleset_digest, policy=policy, counts=counts,
        approved=approved, content=content,
    ))
    events.extend(prepared.built_events[o.patient_id] for o in todo)
    audit.append(session, events, now=now)
    return counts


def _decision_row(
    o: PatientOutcome, did: str, *, cycle_id: str, now: datetime, digest: str, model_version: str | None
) -> dict[str, Any]:
    return {
        "id": did, "cycle_id": cycle_id, "patient_id": o.patient_id, "created_at": now, "outcome": o.outcome,
        "chosen": [
            {"nudge": c.nudge_id, "score": _finite(c.score), "propensity": _finite(c.propensity),
             "components": c.components, "caution": list(c.caution),
             "fired": list(c.fired)}
            for c in o.chosen
        ],
        "review": [_flagged(f) for f in o.review],
        "blocked": [_flagged(f) for f in o.blocked],
        "dropped": o.dropped,
        "segments": list(o.segments),
        "experiments": dict(o.experiments),
        "held_out": o.held_out,
        "withheld": list(o.withheld),
        "stage": o.stage,
        "ruleset_digest": digest,
        "model_version": o.model_version or model_version,
        "context_version": o.context_version,
    }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity (PostgreSQL refuses them): an undefined number is stored as null.

    Components come JSON-ready from the plan (``BatchPlan.components_record``), and the JSON encoder
    writes any other non-finite float as null too (``adapters.json_codec``)."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _flagged(f: FlaggedNudge) -> dict[str, Any]:
    return {"nudge": f.nudge_id, "fired": list(f.fired), "escalation": f.escalation}


def _reconcile_ready(
    session: Session,
    todo: Sequence[PatientOutcome],
    decision_ids: dict[str, str],
    *,
    cycle_id: str,
    now: datetime,
    digest: str,
    policy: QueuePolicy,
    counts: WriteCounts,
    content: Mapping[str, str],
) -> set[tuple[str, str]]:
    """Reconcile the ready queue; returns the (patient, nudge) pairs a clinician approved and that wait."""
    ids = [o.patient_id for o in todo]
    # Clinician-approved rows (review_item_id set) are never superseded by a build: the approval
    # stands until the nudge is served or expires, and the serve path re-checks it.
    current: dict[tuple[str, str], str] = {}
    approved: set[tuple[str, str]] = set()
    for r in session.execute(
        select(ReadyNudgeRow.id, ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id, ReadyNudgeRow.review_item_id)
        .where(ReadyNudgeRow.patient_id.in_(ids), ReadyNudgeRow.status == "ready", ReadyNudgeRow.expires_at > now)
    ):
        if r.review_item_id is not None:
            approved.add((r.patient_id, r.nudge_id))
        else:
            current[(r.patient_id, r.nudge_id)] = r.id
    wanted: set[tuple[str, str]] = set()
    new_rows: list[dict[str, Any]] = []
    for o in todo:
        for c in o.chosen:
            key = (o.patient_id, c.nudge_id)
            wanted.add(key)
            if key in current or key in approved:
                counts.ready_kept += 1
                continue
            new_rows.append({
                "id": new_id(), "patient_id": o.patient_id, "nudge_id": c.nudge_id, "cycle_id": cycle_id,
                "decision_id": decision_ids[o.patient_id], "status": "ready", "score": c.score,
                "caution": list(c.caution), "context_version": o.context_version, "ruleset_digest": digest,
                "content_digest": content.get(c.nudge_id), "created_at": now, "not_before": None,
                "expires_at": now + policy.ready_ttl,
            })
    stale = [rid for key, rid in current.items() if key not in wanted]
    if stale:
        session.execute(  # only rows still ready: one served since the read above stays served
            update(ReadyNudgeRow).where(ReadyNudgeRow.id.in_(stale), ReadyNudgeRow.status == "ready")
            .values(status="superseded")
        )
        counts.ready_superseded += len(stale)
    if new_rows:
        bulk_insert(session, ReadyNudgeRow, new_rows, ignore_conflicts=True)
        counts.ready_inserted += len(new_rows)
    return approved


def _review_items(
    session: Session,
    todo: Sequence[PatientOutcome],
    decision_ids: dict[str, str],
    *,
    cycle_id: str,
    now: datetime,
    digest: str,
    policy: QueuePolicy,
    counts: WriteCounts,
    approved: set[tuple[str, str]],
    content: Mapping[str, str],
) -> list[AuditEvent]:
    # A nudge a clinician already approved, waiting in the ready queue, needs no new item.
    flagged = [(o, f) for o in todo for f in o.review if (o.patient_id, f.nudge_id) not in approved]
    if not flagged:
        return []
    ids = list({o.patient_id for o, _ in flagged})
    pending_rows = session.execute(
        select(ReviewItemRow.patient_id, ReviewItemRow.nudge_id, ReviewItemRow.escalation).where(
            ReviewItemRow.patient_id.in_(ids), ReviewItemRow.status == "pending"
        )
    ).all()
    pending = {(r.patient_id, r.nudge_id) for r in pending_rows}
    open_per_patient = Counter(r.patient_id for r in pending_rows)
    urgent_open = {r.patient_id for r in pending_rows if r.escalation}
    scopes: dict[tuple[str, str], list[ApprovalScopeRow]] = {}
    for row_scope in session.scalars(
        select(ApprovalScopeRow).where(and_(ApprovalScopeRow.patient_id.in_(ids), ApprovalScopeRow.valid_until > now))
    ):
        scopes.setdefault((row_scope.patient_id, row_scope.nudge_id), []).append(row_scope)
    rows: list[dict[str, Any]] = []
    ready_rows: list[dict[str, Any]] = []
    events: list[AuditEvent] = []
    for o, f in flagged:
        key = (o.patient_id, f.nudge_id)
        if key in pending:
            continue
        urgent = f.escalation is not None
        # A scoped approval covers the rules it was given over, at no escalation: an urgent item always waits.
        reviewed = reviewed_rules(f.fired)
        scope = None if urgent or not reviewed else next(
            (s for s in scopes.get(key, []) if reviewed <= set(s.rule_ids)), None)
        # One open item per patient; an escalation still gets through once, ahead of routine items.
        full = open_per_patient[o.patient_id] >= policy.max_pending_reviews
        if scope is None and full and not (urgent and o.patient_id not in urgent_open):
            continue
        pending.add(key)
        if scope is None:
            open_per_patient[o.patient_id] += 1
            if urgent:
                urgent_open.add(o.patient_id)
        item_id = new_id()
        row = {
            "id": item_id, "patient_id": o.patient_id, "nudge_id": f.nudge_id, "cycle_id": cycle_id,
            "decision_id": decision_ids[o.patient_id], "status": "pending", "priority": 0 if urgent else 2,
            "rule_ids": list(f.rule_ids), "fired": list(f.fired), "escalation": f.escalation,
            "ruleset_digest": digest, "context_version": o.context_version, "created_at": now,
            "due_at": now + (policy.review_sla_urgent if urgent else policy.review_sla),
            "expires_at": now + policy.review_ttl, "version": 0,
        }
        if scope is not None:
            row.update(status="approved", decided_at=now, decided_by=scope.created_by,
                       reason_code="scoped-approval", scope_days=None)
            counts.review_auto_approved += 1
            ready_rows.append({
                "id": new_id(), "patient_id": o.patient_id, "nudge_id": f.nudge_id, "cycle_id": cycle_id,
                "decision_id": decision_ids[o.patient_id], "review_item_id": item_id, "status": "ready",
                "score": f.score if f.score is not None else 0.0, "caution": list(_cautions(f)),
                "context_version": o.context_version, "ruleset_digest": digest,
                "content_digest": content.get(f.nudge_id), "created_at": now, "not_before": None,
                "expires_at": now + policy.ready_ttl,
            })
            events.append(AuditEvent(
                "approved", "system", actor_id=scope.created_by, patient_ref=o.patient_id, nudge_id=f.nudge_id,
                decision="deliver", rule_ids=f.rule_ids, ruleset_digest=digest,
                details={"review_item": item_id, "reason_code": "scoped-approval", "scope": scope.id},
            ))
        else:
            counts.review_created += 1
            events.append(AuditEvent(
                "queued", "system", patient_ref=o.patient_id, nudge_id=f.nudge_id, decision="review",
                rule_ids=f.rule_ids, ruleset_digest=digest,
                details={"review_item": item_id, "priority": row["priority"]},
            ))
        rows.append(row)
    bulk_insert(session, ReviewItemRow, rows)
    bulk_insert(session, ReadyNudgeRow, ready_rows, ignore_conflicts=True)
    return events


def _cautions(f: FlaggedNudge) -> tuple[str, ...]:
    """Caution texts of the caution-level rules among a flagged nudge's fired rules."""
    return tuple(
        str(text) for fired in f.fired if fired.get("action") == "caution" for text in fired.get("caution", ())
    )


def _built_event(o: PatientOutcome, digest: str, model_version: str | None) -> AuditEvent:
    rules = sorted({r for f in (*o.review, *o.blocked) for r in f.rule_ids}
                   | {str(x["rule"]) for c in o.chosen for x in c.fired})
    decision = {"ready": "deliver", "review": "review", "blocked": "block", "nothing": None}[o.outcome]
    return AuditEvent(
        "built", "system", patient_ref=o.patient_id,
        nudge_id=o.chosen[0].nudge_id if o.chosen else None,
        decision=decision, rule_ids=tuple(rules), ruleset_digest=digest,
        details={
            "chosen": [c.nudge_id for c in o.chosen],
            "review": [f.nudge_id for f in o.review],
            "blocked": [f.nudge_id for f in o.blocked],
            "dropped": {reason: len(ids) for reason, ids in o.dropped.items()},
            "model_version": o.model_version or model_version,
            "escalation": o.escalation,
            "arms": dict(o.experiments),
            "held_out": o.held_out,
        },
    )
