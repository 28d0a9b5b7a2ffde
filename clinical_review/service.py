"""Use cases of the review queue; each is one unit of work with its audit records.

- ``list_items`` / ``counts`` / ``item_detail`` / ``dashboard`` read.
- ``reveal_identifiers`` decrypts a patient's identifiers for a clinician and audits the view.
- ``decide`` approves or rejects one item; ``decide_by_rule`` does so for every pending item a rule
  flagged. A decision is a compare-and-set on the item (``UPDATE ... WHERE id = :id AND version = :v
  AND status = 'pending'``): of two decisions on one item, even at the same moment, one wins and the
  other gets :class:`~nudge_engine.domain.errors.Conflict` and changes nothing.
- Approval re-runs the guardrails on the patient's current context and puts the nudge into the
  ready queue (``ready_nudges.review_item_id`` set), optionally with an approval scope; rejection
  and expiry never deliver. The audit records carry the reason code, never the comment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from clinical_review import queries
from clinical_review.evidence import ContextView, EvidenceLine, context_view, parse_evidence
from clinical_review.model import (
    Actor,
    BulkOutcome,
    Dashboard,
    DayCount,
    Decide,
    DecisionOutcome,
    ItemSummary,
    QueueCounts,
    QueuePage,
    QueueQuery,
    ReviewStatus,
    Skipped,
    Verdict,
)
from clinical_review.reasons import ReasonCodes
from clinical_review.rules import RuleInfo, RuleLibrary
from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import ApprovalScopeRow, ReadyNudgeRow, ReviewItemRow, new_id
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.context import PatientContext, PatientIdentifiers
from nudge_engine.domain.errors import Conflict, NotFound
from nudge_engine.domain.nudge import Nudge, guarded_digest
from nudge_engine.guardrails.decision import Outcome
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.logs import get_logger
from nudge_engine.services.approvals import Approval, reviewed_rules
from nudge_engine.services.delivery import lock_patient
from nudge_engine.services.feedback import suppressed_pairs
from nudge_engine.services.review_expiry import expire_overdue_reviews

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.guardrails.compiler import CompiledRuleSet
    from nudge_engine.privacy.vault import IdentifierVault

_log = get_logger(__name__)
READY_TTL = timedelta(hours=36)  # as the build's ready queue
BULK_LIMIT = 200
SKIP_MESSAGES = {
    "already_decided": "the item was already decided",
    "past_ttl": "the item's time to live has passed; it expires without delivery",
    "nudge_withdrawn": "the nudge is no longer in the catalog",
    "patient_gone": "the patient was erased",
    "now_blocked": "the guardrails now block this nudge on the patient's current record; reject it",
    "new_rules_fired": "rules this review did not cover now flag the nudge; reject it and let the next build ask again",
    "escalated": "the patient's record now escalates this nudge past what was reviewed; reject it",
    "decide_alone": "other rules ask for review of this nudge too, the rule only cautioned, or it is urgent: "
                    "decide it on its own",
}


@dataclass(frozen=True, slots=True)
class FiredView:
    rule: RuleInfo
    action: str
    evidence: tuple[EvidenceLine, ...]


@dataclass(frozen=True, slots=True)
class ItemDetail:
    item: ItemSummary
    nudge: Nudge | None
    fired: tuple[FiredView, ...]
    context: ContextView
    # the rule set that sent it to review, when another is loaded now (whose rule texts the page shows)
    flagged_under: str | None = None
    loaded: str | None = None


class ReviewService:
    """The clinician review queue over one database (see the module docstring)."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        audit: AuditTrail,
        vault: IdentifierVault,
        clock: Callable[[], datetime],
        ruleset: Callable[[], CompiledRuleSet],
        nudges: Mapping[str, Nudge],
        reasons: ReasonCodes,
        rules: RuleLibrary,
    ) -> None:
        self._uow_factory = uow_factory
        self._audit = audit
        self._vault = vault
        self._clock = clock
        self._ruleset = ruleset
        self.nudges = dict(nudges)
        self.reasons = reasons
        self.rules = rules

    def now(self) -> datetime:
        return self._clock()

    # --- reads ---------------------------------------------------------------------------------

    def list_items(self, query: QueueQuery) -> QueuePage:
        with self._uow_factory() as uow:
            return queries.list_items(uow.session, query, now=self._clock(), nudges=self.nudges)

    def counts(self) -> QueueCounts:
        with self._uow_factory() as uow:
            return queries.counts(uow.session, now=self._clock())

    def get(self, item_id: str) -> ItemSummary:
        with self._uow_factory() as uow:
            return queries.summary(self._row(uow.session, item_id), self.nudges)

    def item_detail(self, item_id: str) -> ItemDetail:
        now = self._clock()
        with self._uow_factory() as uow:
            row = self._row(uow.session, item_id)
            ctx = load_contexts(uow.session, [row.patient_id]).get(row.patient_id, PatientContext())
            item = queries.summary(row, self.nudges)
            flagged_digest = row.ruleset_digest
        view = context_view(ctx, now)
        fired = tuple(
            FiredView(self.rules.get(f.rule), f.action, tuple(parse_evidence(e, view.names) for e in f.evidence))
            for f in item.fired
        )
        loaded = self._ruleset().digest
        flagged_under = flagged_digest if flagged_digest != loaded else None
        return ItemDetail(item, self.nudges.get(item.nudge_id), fired, view, flagged_under, loaded)

    def dashboard(self, *, days: int = 14) -> Dashboard:
        now = self._clock()
        start = (now - timedelta(days=days - 1)).date()
        labels = tuple((start + timedelta(days=i)).isoformat() for i in range(days))
        grid: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: {d: defaultdict(int) for d in labels})
        totals: dict[str, int] = defaultdict(int)
        R = ReviewItemRow
        with self._uow_factory() as uow:
            s = uow.session
            pending = s.scalar(select(func.count()).select_from(R).where(R.status == ReviewStatus.PENDING.value))
            overdue = s.scalar(select(func.count()).select_from(R).where(
                R.status == ReviewStatus.PENDING.value, R.due_at <= now))
            oldest = s.scalar(select(func.min(R.created_at)).where(R.status == ReviewStatus.PENDING.value))
            since = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo)
            for status, rule_ids, decided_at in s.execute(
                select(R.status, R.rule_ids, R.decided_at).where(R.decided_at >= since, R.status != "pending")
            ):
                if decided_at is None:
                    continue
                day = decided_at.date().isoformat()
                totals[status] += 1
                for rule in rule_ids or ():
                    if day in grid[rule]:
                        grid[rule][day][status] += 1
        per_rule = {
            rule: tuple(DayCount(d, c["approved"], c["rejected"], c["expired"]) for d, c in cells.items())
            for rule, cells in sorted(grid.items())
        }
        return Dashboard(now, int(pending or 0), int(overdue or 0), oldest, labels, per_rule, dict(totals))

    # --- identifiers -----------------------------------------------------------------------------

    def reveal_identifiers(self, item_id: str, *, actor: Actor) -> PatientIdentifiers | None:
        """The patient's decrypted identifiers (None once erased); the view is audited in the same transaction."""
        now = self._clock()
        with self._uow_factory() as uow:
            row = self._row(uow.session, item_id)
            found = self._vault.reveal(uow.session, row.patient_id)
            self._audit.append(uow.session, [AuditEvent(
                EventType.IDENTIFIERS_VIEWED, actor.role, actor_id=actor.actor_id, patient_ref=row.patient_id,
                details={"review_item": row.id, "revealed": found is not None},
            )], now=now)
            uow.commit()
        return found

    # --- decisions -------------------------------------------------------------------------------

    def decide(self, item_id: str, command: Decide, *, actor: Actor) -> DecisionOutcome:
        """Approve or reject one item. Raises NotFound, InvalidInput (reason code) or Conflict (already decided ...)."""
        self.reasons.check(command.verdict, command.reason_code)
        now = self._clock()
        with self._uow_factory() as uow:
            row = self._row(uow.session, item_id)
            result = self._apply(uow.session, row, command, actor=actor, now=now)
            if isinstance(result, Skipped):
                raise Conflict(f"review item {item_id}: {SKIP_MESSAGES[result.reason]}")
            self._audit.append(uow.session, [self._event(row, result, command, actor)], now=now)
            uow.commit()
        _log.info("review_decided", review_item=item_id, verdict=command.verdict.value,
                  reason_code=command.reason_code)
        return result

    def decide_by_rule(self, rule_id: str, command: Decide, *, actor: Actor, limit: int = BULK_LIMIT) -> BulkOutcome:
        """Decide every pending item ``rule_id`` flagged (oldest first, up to ``limit``) in one transaction;
        items that cannot take the decision are skipped with their reason."""
        self.reasons.check(command.verdict, command.reason_code)
        if command.expected_version is not None:
            command = Decide(command.verdict, command.reason_code, command.comment, command.scope_days)
        now = self._clock()
        decided: list[str] = []
        skipped: list[Skipped] = []
        events: list[AuditEvent] = []
        with self._uow_factory() as uow:
            rows = uow.session.scalars(
                select(ReviewItemRow).where(ReviewItemRow.status == ReviewStatus.PENDING.value,
                                            queries.rule_filter(rule_id))
                .order_by(ReviewItemRow.created_at, ReviewItemRow.id).limit(limit)
            ).all()
            for row in rows:
                if command.verdict is Verdict.APPROVE and (
                    reviewed_rules(row.fired) != {rule_id} or row.escalation is not None
                ):  # approving by rule decides that rule only: nothing else waits on a clinician
                    skipped.append(Skipped(row.id, "decide_alone"))
                    continue
                result = self._apply(uow.session, row, command, actor=actor, now=now)
                if isinstance(result, Skipped):
                    skipped.append(result)
                else:
                    decided.append(row.id)
                    events.append(self._event(row, result, command, actor, bulk_rule=rule_id))
            self._audit.append(uow.session, events, now=now)
            uow.commit()
        _log.info("review_bulk_decided", rule=rule_id, verdict=command.verdict.value, decided=len(decided),
                  skipped=len(skipped))
        return BulkOutcome(tuple(decided), tuple(skipped))

    def expire_overdue(self) -> int:
        """Expire pending items past their time to live (the scheduler's job calls this service too)."""
        now = self._clock()
        with self._uow_factory() as uow:
            count = expire_overdue_reviews(uow.session, now=now, audit=self._audit)
            uow.commit()
        return count

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, item_id: str) -> ReviewItemRow:
        row = session.get(ReviewItemRow, item_id) if len(item_id) <= 32 else None
        if row is None:
            raise NotFound(f"review item {item_id[:32]} not found")
        return row

    def _apply(
        self, session: Session, row: ReviewItemRow, command: Decide, *, actor: Actor, now: datetime
    ) -> DecisionOutcome | Skipped:
        if row.status != ReviewStatus.PENDING.value or (
            command.expected_version is not None and command.expected_version != row.version
        ):
            return Skipped(row.id, "already_decided")
        if row.expires_at <= now:
            return Skipped(row.id, "past_ttl")
        caution: tuple[str, ...] = ()
        version = row.context_version
        digest = row.ruleset_digest
        if command.verdict is Verdict.APPROVE:
            checked = self._recheck(session, row, now)
            if isinstance(checked, Skipped):
                return checked
            caution, version, digest = checked
        won = session.execute(
            update(ReviewItemRow)
            .where(ReviewItemRow.id == row.id, ReviewItemRow.version == row.version,
                   ReviewItemRow.status == ReviewStatus.PENDING.value)
            .values(status=command.verdict.status.value, decided_at=now, decided_by=actor.actor_id,
                    reason_code=command.reason_code, comment=command.comment, scope_days=command.scope_days,
                    version=ReviewItemRow.version + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(won, "rowcount", 0) != 1:
            return Skipped(row.id, "already_decided")
        delivery_id = scope_id = None
        # The patient's "not right / unsafe for me" stands over a clinician's approval: delivery would supersede
        # the row at once, so none is queued and the record says the nudge is withheld.
        flagged = command.verdict is Verdict.APPROVE and (row.patient_id, row.nudge_id) in suppressed_pairs(
            session, [row.patient_id])
        if command.verdict is Verdict.APPROVE and not flagged:
            delivery_id = self._enqueue(session, row, caution=caution, context_version=version, digest=digest,
                                        now=now)
            if command.scope_days:
                scope_id = new_id()
                session.add(ApprovalScopeRow(
                    id=scope_id, patient_id=row.patient_id, nudge_id=row.nudge_id, review_item_id=row.id,
                    rule_ids=sorted(reviewed_rules(row.fired)), created_by=actor.actor_id, created_at=now,
                    valid_until=now + timedelta(days=command.scope_days),
                ))
                session.flush()
        session.refresh(row)
        if command.verdict is Verdict.APPROVE:
            return DecisionOutcome(queries.summary(row, self.nudges), delivery_id, scope_id, digest, version, flagged)
        return DecisionOutcome(queries.summary(row, self.nudges), delivery_id, scope_id)

    def _recheck(
        self, session: Session, row: ReviewItemRow, now: datetime
    ) -> tuple[tuple[str, ...], int, str] | Skipped:
        """The guardrails on the patient's current record: the approval covers only the rules it reviewed."""
        nudge = self.nudges.get(row.nudge_id)
        if nudge is None:
            return Skipped(row.id, "nudge_withdrawn")
        patient = lock_patient(session, row.patient_id)
        if patient is None or patient.erased_at is not None:
            return Skipped(row.id, "patient_gone")
        ctx = load_contexts(session, [row.patient_id]).get(row.patient_id, PatientContext())
        decision = decide(ctx, nudge, self._ruleset(), now)
        if decision.decision is Outcome.BLOCK:
            return Skipped(row.id, "now_blocked")
        if decision.decision is Outcome.REVIEW:
            approval = Approval.of_item(row.fired, row.escalation)
            if not approval.covers(decision.review_rules, None):
                return Skipped(row.id, "new_rules_fired")
            if not approval.covers(decision.review_rules, decision.escalation):
                return Skipped(row.id, "escalated")
        return decision.caution, int(patient.context_version), decision.ruleset_digest

    def _enqueue(
        self, session: Session, row: ReviewItemRow, *, caution: tuple[str, ...], context_version: int, digest: str,
        now: datetime,
    ) -> str:
        """The approved nudge joins the ready queue ahead of the patient's other ready nudges, with the content
        its re-check read."""
        nudge = self.nudges.get(row.nudge_id)
        best = session.scalar(select(func.max(ReadyNudgeRow.score)).where(
            ReadyNudgeRow.patient_id == row.patient_id, ReadyNudgeRow.status == "ready"))
        ready_id = new_id()
        session.add(ReadyNudgeRow(
            id=ready_id, patient_id=row.patient_id, nudge_id=row.nudge_id, cycle_id=None, decision_id=row.decision_id,
            review_item_id=row.id, status="ready", score=float(best or 0.0) + 1.0, caution=list(caution),
            context_version=context_version, ruleset_digest=digest, created_at=now, not_before=None,
            expires_at=now + READY_TTL, content_digest=guarded_digest(nudge) if nudge is not None else None,
        ))
        session.flush()
        return ready_id

    @staticmethod
    def _event(
        row: ReviewItemRow, outcome: DecisionOutcome, command: Decide, actor: Actor, *, bulk_rule: str | None = None
    ) -> AuditEvent:
        details: dict[str, object] = {
            "review_item": row.id, "reason_code": command.reason_code, "commented": command.comment is not None,
        }
        if outcome.delivery_id:
            details["delivery_id"] = outcome.delivery_id
        if outcome.scope_id:
            details.update(scope=outcome.scope_id, scope_days=command.scope_days)
        if bulk_rule:
            details["bulk_rule"] = bulk_rule
        if outcome.context_version is not None:
            details["context_version"] = outcome.context_version
        if outcome.patient_flagged:
            details["patient_flagged"] = True
        approved = command.verdict is Verdict.APPROVE
        return AuditEvent(
            EventType.APPROVED if approved else EventType.REJECTED, actor.role, actor_id=actor.actor_id,
            patient_ref=row.patient_id, nudge_id=row.nudge_id,
            decision="deliver" if approved and not outcome.patient_flagged else "withhold",
            rule_ids=tuple(row.rule_ids or ()), ruleset_digest=outcome.ruleset_digest or row.ruleset_digest,
            details=details,
        )
