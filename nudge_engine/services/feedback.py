"""Patients' and clinicians' feedback on nudges and rules; one transaction per use case, audited in it.

Patients (through the app backend, ``service`` role) flag a nudge that was served to them:

* ``not_right_for_me``: suppressed for this patient at once (its ready rows are superseded) and
  skipped by every later build (:func:`suppressed_pairs`);
* ``unsafe_for_me``: the same, and a review item opens for a clinician (rule id ``PATIENT-FLAG``,
  priority 1: after escalations, before routine items). A clinician's approval does not override
  the patient's flag: delivery never serves a flagged nudge, and such an approval queues nothing (audited
  as withheld, ``patient_flagged``);
* ``too_many``: that patient's caps come down by one a day (floor 1) and at least one a week.

Clinicians report a rule that fired wrongly or failed to fire for a nudge; :func:`rule_report_counts`
counts them per rule and nudge for the monitoring report, small cells suppressed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.orm import PatientPreferenceRow, ReadyNudgeRow, ReviewItemRow, new_id
from nudge_engine.adapters.orm.feedback import PatientFeedbackRow, RuleReportRow
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.errors import InvalidInput, NotFound
from nudge_engine.services.delivery import PatientLookup, lock_patient

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.vault import IdentifierVault

PATIENT_FLAG_RULE = "PATIENT-FLAG"  # the review item's rule id: it came from the patient, not a guardrail
PATIENT_FLAG_PRIORITY = 1
DEFAULT_CAPS = (2, 7)  # per day, per week, when neither the patient nor the catalog sets any


class FeedbackKind(StrEnum):
    NOT_RIGHT_FOR_ME = "not_right_for_me"
    UNSAFE_FOR_ME = "unsafe_for_me"
    TOO_MANY = "too_many"


SUPPRESSING = frozenset({FeedbackKind.NOT_RIGHT_FOR_ME, FeedbackKind.UNSAFE_FOR_ME})


class RuleReportKind(StrEnum):
    FIRED_WRONGLY = "fired_wrongly"
    FAILED_TO_FIRE = "failed_to_fire"


@dataclass(frozen=True, slots=True)
class Feedback:
    kind: FeedbackKind
    nudge_id: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecorded:
    feedback_id: str
    kind: FeedbackKind
    nudge_id: str | None
    suppressed: bool
    superseded: int
    review_item_id: str | None
    max_per_day: int | None
    max_per_week: int | None


@dataclass(frozen=True, slots=True)
class RuleReport:
    rule_id: str
    nudge_id: str
    kind: RuleReportKind
    reason_code: str | None = None
    review_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class RuleReportRecorded:
    report_id: str
    rule_id: str
    nudge_id: str
    kind: RuleReportKind


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    sla: timedelta = timedelta(hours=24)
    ttl: timedelta = timedelta(days=7)


class FeedbackService:
    """``POST feedback`` (patients) and ``POST rule-reports`` (clinicians)."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        vault: IdentifierVault,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        default_caps: tuple[int, int] = DEFAULT_CAPS,
        rule_ids: Collection[str] | None = None,
        ruleset_digest: str | None = None,
        review: ReviewPolicy | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._audit = audit
        self._clock = clock
        self._patients = PatientLookup(vault)
        self._default_caps = default_caps
        self._rule_ids = frozenset(rule_ids) if rule_ids is not None else None
        self._digest = ruleset_digest
        self._review = review or ReviewPolicy()

    # --- patients --------------------------------------------------------------------------------

    def record(self, *, source_id: str, feedback: Feedback, actor_id: str | None) -> FeedbackRecorded:
        """Store the flag and act on it at once. Unknown patients and nudges never served to them: NotFound."""
        if feedback.kind in SUPPRESSING and not feedback.nudge_id:
            raise InvalidInput(f"body.nudge_id: is required for '{feedback.kind.value}' feedback")
        now = self._clock()
        with self._uow_factory() as uow:
            session = uow.session
            patient_id = self._patients.find(session, source_id)
            patient = lock_patient(session, patient_id) if patient_id else None
            if patient_id is None or patient is None or patient.erased_at is not None:
                raise NotFound("patient not found")
            digest = None
            if feedback.nudge_id is not None:
                digest = _served_digest(session, patient_id, feedback.nudge_id)
                if digest is None:
                    raise NotFound("nudge not found")
            feedback_id = new_id()
            events: list[AuditEvent] = []
            superseded = 0
            review_item_id = None
            caps: tuple[int | None, int | None] = (None, None)
            if feedback.kind in SUPPRESSING and feedback.nudge_id is not None:
                superseded_ids = _supersede_ready(session, patient_id, feedback.nudge_id)
                superseded = len(superseded_ids)
                events.extend(
                    AuditEvent(EventType.SUPERSEDED, "service", actor_id=actor_id, patient_ref=patient_id,
                               nudge_id=feedback.nudge_id, details={"delivery_id": rid, "reason": "patient_flagged"})
                    for rid in superseded_ids
                )
            if feedback.kind is FeedbackKind.UNSAFE_FOR_ME and feedback.nudge_id is not None:
                review_item_id, queued = self._open_review(
                    session, patient_id=patient_id, nudge_id=feedback.nudge_id, context_version=patient.context_version,
                    digest=digest or self._digest or "patient-feedback", now=now,
                )
                events.extend(queued)
            if feedback.kind is FeedbackKind.TOO_MANY:
                caps, changed = self._lower_caps(session, patient_id, now, actor_id=actor_id)
                events.extend(changed)
            session.execute(insert(PatientFeedbackRow), [{
                "id": feedback_id, "patient_id": patient_id, "nudge_id": feedback.nudge_id,
                "kind": feedback.kind.value, "delivery_id": None, "review_item_id": review_item_id,
                "created_at": now, "lifted_at": None,
            }])
            events.insert(0, AuditEvent(
                EventType.FEEDBACK_RECEIVED, "service", actor_id=actor_id, patient_ref=patient_id,
                nudge_id=feedback.nudge_id,
                details={"feedback_id": feedback_id, "kind": feedback.kind.value, "superseded": superseded,
                         "review_item": review_item_id},
            ))
            self._audit.append(session, events, now=now)
            uow.commit()
        return FeedbackRecorded(feedback_id, feedback.kind, feedback.nudge_id, feedback.kind in SUPPRESSING,
                                superseded, review_item_id, caps[0], caps[1])

    def _open_review(
        self, session: Session, *, patient_id: str, nudge_id: str, context_version: int, digest: str, now: datetime
    ) -> tuple[str, list[AuditEvent]]:
        """A review item for a clinician (one pending per patient and nudge: a repeated flag joins it)."""
        pending = session.execute(
            select(ReviewItemRow.id).where(ReviewItemRow.patient_id == patient_id, ReviewItemRow.nudge_id == nudge_id,
                                           ReviewItemRow.status == "pending")
        ).scalar()
        if pending is not None:
            return str(pending), []
        item_id = new_id()
        session.execute(insert(ReviewItemRow), [{
            "id": item_id, "patient_id": patient_id, "nudge_id": nudge_id, "cycle_id": None, "decision_id": None,
            "status": "pending", "priority": PATIENT_FLAG_PRIORITY, "rule_ids": [PATIENT_FLAG_RULE],
            "fired": [{"rule": PATIENT_FLAG_RULE, "action": "review",
                       "evidence": ["patient-feedback: unsafe_for_me"]}],
            "escalation": None, "ruleset_digest": digest, "context_version": context_version, "created_at": now,
            "due_at": now + self._review.sla, "expires_at": now + self._review.ttl, "version": 0,
        }])
        return item_id, [AuditEvent(
            EventType.QUEUED, "service", patient_ref=patient_id, nudge_id=nudge_id, decision="review",
            rule_ids=(PATIENT_FLAG_RULE,), ruleset_digest=digest,
            details={"review_item": item_id, "priority": PATIENT_FLAG_PRIORITY, "origin": "patient_feedback"},
        )]

    def _lower_caps(
        self, session: Session, patient_id: str, now: datetime, *, actor_id: str | None
    ) -> tuple[tuple[int, int], list[AuditEvent]]:
        prefs = session.get(PatientPreferenceRow, patient_id)
        day_now = prefs.max_per_day if prefs is not None and prefs.max_per_day is not None else self._default_caps[0]
        week_now = (prefs.max_per_week if prefs is not None and prefs.max_per_week is not None
                    else self._default_caps[1])
        day = max(1, day_now - 1)
        week = max(1, min(week_now - 1, day * 7))
        if prefs is None:
            session.add(PatientPreferenceRow(patient_id=patient_id, max_per_day=day, max_per_week=week, updated_at=now,
                                             opted_out_categories=[]))
        else:
            prefs.max_per_day, prefs.max_per_week, prefs.updated_at = day, week, now
        session.flush()
        return (day, week), [AuditEvent(
            EventType.PREFERENCES_CHANGED, "service", actor_id=actor_id, patient_ref=patient_id,
            details={"max_per_day": day, "max_per_week": week, "cause": "too_many"},
        )]

    # --- clinicians ------------------------------------------------------------------------------

    def report_rule(self, report: RuleReport, *, actor_id: str | None) -> RuleReportRecorded:
        """Store a clinician's rule report; a named review item must exist (its patient is linked, never shown)."""
        if self._rule_ids is not None and report.rule_id not in self._rule_ids:
            raise InvalidInput(f"body.rule_id: '{report.rule_id}' is not a rule of the loaded rule set")
        now = self._clock()
        with self._uow_factory() as uow:
            session = uow.session
            patient_id = None
            if report.review_item_id is not None:
                item = session.execute(
                    select(ReviewItemRow.patient_id, ReviewItemRow.nudge_id).where(
                        ReviewItemRow.id == report.review_item_id)
                ).first()
                if item is None:
                    raise NotFound(f"review item {report.review_item_id} not found")
                if item.nudge_id != report.nudge_id:
                    raise InvalidInput("body.nudge_id: differs from the review item's nudge")
                patient_id = str(item.patient_id)
            report_id = new_id()
            session.execute(insert(RuleReportRow), [{
                "id": report_id, "rule_id": report.rule_id, "nudge_id": report.nudge_id, "kind": report.kind.value,
                "reason_code": report.reason_code, "review_item_id": report.review_item_id,
                "patient_id": patient_id, "reported_by": actor_id, "ruleset_digest": self._digest, "created_at": now,
            }])
            details: dict[str, Any] = {"report_id": report_id, "kind": report.kind.value}
            if report.reason_code:
                details["reason_code"] = report.reason_code
            if report.review_item_id:
                details["review_item"] = report.review_item_id
            self._audit.append(session, [AuditEvent(
                EventType.RULE_REPORTED, "clinician", actor_id=actor_id, patient_ref=patient_id,
                nudge_id=report.nudge_id, rule_ids=(report.rule_id,), ruleset_digest=self._digest, details=details,
            )], now=now)
            uow.commit()
        return RuleReportRecorded(report_id, report.rule_id, report.nudge_id, report.kind)


# --- for the build and the monitoring report ---------------------------------------------------------


def suppressed_pairs(session: Session, patient_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(patient id, nudge id) pairs the patients flagged and did not lift: the build never plans them.

    One indexed look-up (``ix_patient_feedback_patient``) per 500 patients.
    """
    ids = list(patient_ids)
    out: set[tuple[str, str]] = set()
    f = PatientFeedbackRow
    for chunk in chunked(ids):
        out.update(
            (str(r.patient_id), str(r.nudge_id))
            for r in session.execute(
                select(f.patient_id, f.nudge_id).where(
                    f.patient_id.in_(chunk), f.kind.in_([k.value for k in SUPPRESSING]), f.lifted_at.is_(None),
                    f.nudge_id.is_not(None),
                )
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class RuleReportCount:
    """Reports on one rule and nudge since a time; counts are None when the cell is suppressed."""

    rule_id: str
    nudge_id: str
    fired_wrongly: int | None
    failed_to_fire: int | None
    patients: int | None
    suppressed: bool


def rule_report_counts(session: Session, since: datetime, *, min_cell: int = 11) -> list[RuleReportCount]:
    """Clinicians' rule reports per rule and nudge since ``since``, for the monitoring report.

    A cell drawn from fewer than ``min_cell`` distinct patients (but at least one) is suppressed:
    its counts are None. Reports not tied to a patient carry no patient information and are shown.
    """
    r = RuleReportRow
    rows = session.execute(
        select(
            r.rule_id, r.nudge_id,
            func.count().filter(r.kind == RuleReportKind.FIRED_WRONGLY.value).label("wrong"),
            func.count().filter(r.kind == RuleReportKind.FAILED_TO_FIRE.value).label("missed"),
            func.count(r.patient_id.distinct()).label("patients"),
        )
        .where(r.created_at >= since)
        .group_by(r.rule_id, r.nudge_id)
        .order_by(r.rule_id, r.nudge_id)
    ).all()
    out: list[RuleReportCount] = []
    for row in rows:
        small = 0 < int(row.patients) < min_cell
        out.append(RuleReportCount(
            row.rule_id, row.nudge_id, None if small else int(row.wrong), None if small else int(row.missed),
            None if small else int(row.patients), small,
        ))
    return out


def _served_digest(session: Session, patient_id: str, nudge_id: str) -> str | None:
    """The rule set digest the nudge was last served under (None: never served to this patient)."""
    row = session.execute(
        select(ReadyNudgeRow.ruleset_digest)
        .where(ReadyNudgeRow.patient_id == patient_id, ReadyNudgeRow.nudge_id == nudge_id,
               ReadyNudgeRow.status == "served")
        .order_by(ReadyNudgeRow.served_at.desc())
        .limit(1)
    ).first()
    return str(row.ruleset_digest) if row is not None else None


def _supersede_ready(session: Session, patient_id: str, nudge_id: str) -> list[str]:
    cond = and_(ReadyNudgeRow.patient_id == patient_id, ReadyNudgeRow.nudge_id == nudge_id,
                ReadyNudgeRow.status == "ready")
    ids = [str(i) for i in session.scalars(select(ReadyNudgeRow.id).where(cond))]
    if ids:
        session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id.in_(ids), ReadyNudgeRow.status == "ready")
                        .values(status="superseded"))
    return ids
