"""Replacing one patient's clinical context from a FHIR R4 Bundle (``PUT .../context``).

The bundle is parsed completely first (the import parser: a malformed resource raises
:class:`~nudge_engine.domain.errors.InvalidResource` naming resource and field, and nothing is
stored). Then, in one transaction: the patient is enrolled (unknown id) or their whole context is
replaced (every origin) and ``context_version`` bumped, through the importer's ``store_in``; the
patient's ready nudges are re-checked by the guardrails on the new context (now blocked or needing
review: superseded, and handed to review routing; still deliverable: stamped with the new version
and cautions); pending review items are handed to review routing; all of it audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from nudge_engine.adapters.context_store import context_digest, load_contexts
from nudge_engine.adapters.orm import PatientRow, ReadyNudgeRow
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.context import PatientContext, PatientRecord
from nudge_engine.domain.errors import InvalidResource
from nudge_engine.domain.nudge import guarded_digest
from nudge_engine.fhir.bundle import parse_bundle
from nudge_engine.services.delivery import (
    DeliveryObserver,
    GuardrailPort,
    NoReviewRouting,
    NudgeSource,
    NullObserver,
    Recheck,
    ReviewRouting,
    approved_for,
    lock_patient,
    still_servable,
    supersede_rows,
    superseded_event,
)
from nudge_engine.services.importing import ImportSummary

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.vault import IdentifierVault
    from nudge_engine.services.importing import Importer

ORIGIN = "api"


@dataclass(frozen=True, slots=True)
class ContextUpdate:
    """What a context replacement did (counts and versions only)."""

    enrolled: bool
    changed: bool
    context_version: int
    ready_kept: int
    ready_superseded: int
    resources: Mapping[str, int]


def read_bundle_for(source_id: str, document: Any) -> PatientRecord:
    """The one patient of ``document``; its Patient (if any) must be the patient named in the path."""
    parsed = parse_bundle(document, source="request body", patient_hint=source_id)
    if len(parsed.patients) != 1:
        raise InvalidResource(resource="Bundle", field="entry", problem="must describe exactly one Patient",
                              source="request body")
    record = parsed.patients[0]
    ids = record.identifiers
    if ids.source_id != source_id and source_id not in ids.record_numbers:
        raise InvalidResource(resource="Patient", field="id", problem="does not match the patient id in the path",
                              source="request body")
    return replace(record, identifiers=replace(ids, source_id=source_id))


def _digest(record: PatientRecord) -> str:
    return context_digest(record.context, timezone=record.timezone, deceased=record.deceased)


def _stored_digests(session: Session, patient_id: str) -> dict[str, str]:
    stored = session.execute(select(PatientRow.context_digests).where(PatientRow.id == patient_id)).scalar_one()
    return dict(stored or {})


class ContextUpdater:
    """``PUT context``: parse, replace, re-check, audit; one transaction."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        vault: IdentifierVault,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        importer: Importer,
        guardrails: GuardrailPort | None,
        nudges: NudgeSource,
        review: ReviewRouting | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._importer = importer
        self._guardrails = guardrails
        self._nudges = nudges
        self._review: ReviewRouting = review or NoReviewRouting()
        self._observer: DeliveryObserver = observer or NullObserver()

    def replace(self, *, source_id: str, document: Any, actor_id: str | None) -> ContextUpdate:
        record = read_bundle_for(source_id, document)
        try:
            return self._replace(record, source_id=source_id, actor_id=actor_id)
        except IntegrityError:
            # PostgreSQL: a concurrent first context for the same app id enrolled the patient after this one
            # looked (the identifier's unique index stopped the second enrolment, nothing of it stored). Once more:
            # the patient is known now, and its row lock orders this update after the other.
            with self._uow_factory() as uow:
                if self._vault.find_patient(uow.session, source_id) is None:
                    raise
            return self._replace(record, source_id=source_id, actor_id=actor_id)

    def _replace(self, record: PatientRecord, *, source_id: str, actor_id: str | None) -> ContextUpdate:
        now = self._clock()
        with self._uow_factory() as uow:
            session = uow.session
            known = self._vault.find_patient(session, source_id)
            if known is not None:
                lock_patient(session, known)
            if known is not None and _stored_digests(session, known) == {ORIGIN: _digest(record)}:
                patient_id, enrolled, changed = known, False, False  # the same context again: a no-op
            else:
                summary = ImportSummary()
                (patient_id,) = self._importer.store_in(
                    session, [record], summary=summary, source=ORIGIN, now=now, replace_all_origins=True,
                    actor_role="service", actor_id=actor_id,
                )
                enrolled = summary.patients_created == 1
                changed = enrolled or summary.patients_updated == 1
            version = session.execute(
                select(PatientRow.context_version).where(PatientRow.id == patient_id)
            ).scalar_one()
            events: list[AuditEvent] = []
            rechecks: list[Recheck | None] = []
            kept = superseded = 0
            if changed and not enrolled:
                # Judged on the context as stored and as every later serve reads it, not as parsed: the store
                # keeps some facts coarser (a birth date as a year and month, say).
                session.flush()
                stored = load_contexts(session, [patient_id]).get(patient_id, PatientContext())
                kept, superseded = self._recheck_ready(
                    session, patient_id=patient_id, context=stored, version=version, now=now,
                    actor_id=actor_id, events=events, rechecks=rechecks,
                )
                events.extend(self._review.reevaluate_pending(session, patient_id=patient_id, context=stored, now=now))
            if not changed:
                events.append(
                    AuditEvent(EventType.CONTEXT_REPLACED, "service", actor_id=actor_id, patient_ref=patient_id,
                               details={"origin": ORIGIN, "unchanged": True})
                )
            self._audit.append(session, events, now=now)
            uow.commit()
        for verdict in rechecks:  # counted once committed
            self._observer.rechecked(verdict, stage="context")
        ctx = record.context
        return ContextUpdate(
            enrolled=enrolled, changed=changed, context_version=version, ready_kept=kept, ready_superseded=superseded,
            resources={
                "conditions": len(ctx.conditions), "procedures": len(ctx.procedures),
                "medications": len(ctx.medications), "observations": len(ctx.observations) + len(ctx.facts),
            },
        )

    def _recheck_ready(
        self, session: Session, *, patient_id: str, context: PatientContext, version: int, now: datetime,
        actor_id: str | None, events: list[AuditEvent], rechecks: list[Recheck | None],
    ) -> tuple[int, int]:
        """Re-check the patient's ready nudges; without a rule set they stay stale (serve fails closed)."""
        if self._guardrails is None:
            rechecks.append(None)
            return 0, 0
        rows = session.execute(
            select(ReadyNudgeRow.id, ReadyNudgeRow.nudge_id, ReadyNudgeRow.review_item_id).where(
                ReadyNudgeRow.patient_id == patient_id, ReadyNudgeRow.status == "ready"
            )
        ).all()
        nudges = self._nudges.find(session, [r.nudge_id for r in rows], at=now)
        kept = superseded = 0
        for r in rows:
            nudge = nudges.get(r.nudge_id)
            if nudge is None:
                supersede_rows(session, [r.id])
                events.append(superseded_event(actor_id=actor_id, patient_id=patient_id, nudge_id=r.nudge_id,
                                               ready_id=r.id, recheck=None, reason="withdrawn"))
                superseded += 1
                continue
            verdict = self._guardrails.recheck(context, nudge, now)
            rechecks.append(verdict)
            if still_servable(verdict, approved_for(session, r.review_item_id)):
                session.execute(
                    update(ReadyNudgeRow)
                    .where(ReadyNudgeRow.id == r.id, ReadyNudgeRow.status == "ready")
                    .values(context_version=version, caution=list(verdict.caution),
                            ruleset_digest=verdict.ruleset_digest, content_digest=guarded_digest(nudge))
                )
                kept += 1
                continue
            supersede_rows(session, [r.id])
            events.append(superseded_event(actor_id=actor_id, patient_id=patient_id, nudge_id=nudge.id, ready_id=r.id,
                                           recheck=verdict, reason="context_changed"))
            if verdict.decision.value == "review":
                events.extend(self._review.route(session, patient_id=patient_id, ready_id=r.id, nudge_id=nudge.id,
                                                 recheck=verdict, now=now))
            superseded += 1
        return kept, superseded
