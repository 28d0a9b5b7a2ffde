"""The review queue's side of a serve or a context update (the delivery services' ``ReviewRouting`` port).

- :meth:`ReviewQueueRouting.route`: a ready nudge that the patient's current record now sends to review
  waits for a clinician, with the rules that fired and their evidence, as a build would queue it (one
  open item per patient; an escalation still gets through once, ahead of routine items).
- :meth:`ReviewQueueRouting.reevaluate_pending`: after the patient's context changed, every pending item is
  decided again on it. An item that still needs review carries the new rules, evidence and escalation
  (its version moves, so a decision taken on the old page conflicts); one whose nudge is now blocked, or
  needs no review any more, expires: nothing is left for a clinician to decide.

Both run in the caller's transaction and return the audit records to append with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import PatientRow, ReviewItemRow, new_id
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.decision import Outcome
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.services.build.writer import QueuePolicy
from nudge_engine.services.review_expiry import expire_items

if TYPE_CHECKING:
    from nudge_engine.guardrails.compiler import CompiledRuleSet
    from nudge_engine.services.delivery import Recheck


class ReviewQueueRouting:
    def __init__(
        self, *, ruleset: Callable[[], CompiledRuleSet], nudges: Mapping[str, Nudge],
        policy: QueuePolicy | None = None,
    ) -> None:
        self._ruleset = ruleset
        self._nudges = dict(nudges)
        self._policy = policy or QueuePolicy()

    def route(
        self, session: Session, *, patient_id: str, ready_id: str, nudge_id: str, recheck: Recheck, now: datetime
    ) -> list[AuditEvent]:
        nudge = self._nudges.get(nudge_id)
        if nudge is None:
            return []
        pending = session.execute(
            select(ReviewItemRow.nudge_id, ReviewItemRow.escalation)
            .where(ReviewItemRow.patient_id == patient_id, ReviewItemRow.status == "pending")
        ).all()
        if any(p.nudge_id == nudge_id for p in pending):
            return []
        context = load_contexts(session, [patient_id]).get(patient_id, PatientContext())
        decision = decide(context, nudge, self._ruleset(), now)
        if decision.decision is not Outcome.REVIEW:
            return []
        urgent = decision.escalation is not None
        full = len(pending) >= self._policy.max_pending_reviews
        if full and not (urgent and not any(p.escalation for p in pending)):
            return []  # the next build asks again once the patient's open item is decided
        version = session.execute(select(PatientRow.context_version).where(PatientRow.id == patient_id)).scalar_one()
        rules = sorted(decision.fired_rules)
        item_id = new_id()
        session.add(ReviewItemRow(
            id=item_id, patient_id=patient_id, nudge_id=nudge_id, cycle_id=None, decision_id=None, status="pending",
            priority=0 if urgent else 2, rule_ids=rules, fired=decision.fired_entries(),
            escalation=decision.escalation, ruleset_digest=decision.ruleset_digest, context_version=int(version),
            created_at=now, due_at=now + (self._policy.review_sla_urgent if urgent else self._policy.review_sla),
            expires_at=now + self._policy.review_ttl, version=0,
        ))
        session.flush()
        return [AuditEvent(
            EventType.QUEUED, "service", patient_ref=patient_id, nudge_id=nudge_id, decision="review",
            rule_ids=tuple(rules), ruleset_digest=decision.ruleset_digest,
            details={"review_item": item_id, "delivery_id": ready_id, "urgent": urgent},
        )]

    def reevaluate_pending(
        self, session: Session, *, patient_id: str, context: PatientContext, now: datetime
    ) -> list[AuditEvent]:
        rows = session.execute(
            select(ReviewItemRow.id, ReviewItemRow.nudge_id, ReviewItemRow.fired, ReviewItemRow.escalation,
                   ReviewItemRow.ruleset_digest, ReviewItemRow.due_at)
            .where(ReviewItemRow.patient_id == patient_id, ReviewItemRow.status == "pending")
            .order_by(ReviewItemRow.created_at, ReviewItemRow.id)
        ).all()
        if not rows:
            return []
        version = int(session.execute(
            select(PatientRow.context_version).where(PatientRow.id == patient_id)).scalar_one())
        events: list[AuditEvent] = []
        for row in rows:
            nudge = self._nudges.get(row.nudge_id)
            if nudge is None:
                continue  # withdrawn from the catalog: the approval's own re-check refuses it
            decision = decide(context, nudge, self._ruleset(), now)
            fired = decision.fired_entries()
            rules = tuple(sorted(decision.fired_rules))
            if decision.decision is Outcome.REVIEW:
                if fired == list(row.fired or ()) and decision.escalation == row.escalation and (
                        decision.ruleset_digest == row.ruleset_digest):
                    continue
                urgent = decision.escalation is not None
                due = min(row.due_at, now + self._policy.review_sla_urgent) if urgent else row.due_at
                session.execute(
                    update(ReviewItemRow)
                    .where(ReviewItemRow.id == row.id, ReviewItemRow.status == "pending")
                    .values(rule_ids=list(rules), fired=fired, escalation=decision.escalation,
                            priority=0 if urgent else 2, due_at=due, ruleset_digest=decision.ruleset_digest,
                            context_version=version, version=ReviewItemRow.version + 1)
                )
                escalated = urgent and decision.escalation != row.escalation
                events.append(AuditEvent(
                    EventType.ESCALATED if escalated else EventType.QUEUED, "service", patient_ref=patient_id,
                    nudge_id=row.nudge_id, decision="review", rule_ids=rules, ruleset_digest=decision.ruleset_digest,
                    details={"review_item": row.id, "reevaluated": True, "context_version": version},
                ))
                continue
            outcome = "now_blocked" if decision.decision is Outcome.BLOCK else "no_longer_flagged"
            expire_items(session, [row.id], now=now)
            events.append(AuditEvent(
                EventType.EXPIRED, "service", patient_ref=patient_id, nudge_id=row.nudge_id,
                decision=decision.decision.value, rule_ids=rules, ruleset_digest=decision.ruleset_digest,
                details={"review_item": row.id, "outcome": outcome, "context_version": version},
            ))
        return events
