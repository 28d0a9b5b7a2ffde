"""Patient feedback, clinicians' rule reports, event intake (quarantine, counters) and outcome aggregates.

``patient_feedback`` is a preference, not an event: retention keeps it. ``patient_nudge_outcomes``
holds the counts of events the retention job has deleted, so the models keep what they learn from
(``raw events + folded counts`` is the whole history); ``event_volume_daily`` keeps their volume for
the report. ``event_intake_issues`` holds what never became a raw event (refused, quarantined).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


class PatientFeedbackRow(Base):
    """A patient's flag on a nudge: ``not_right_for_me``, ``unsafe_for_me`` or ``too_many``."""

    __tablename__ = "patient_feedback"
    __table_args__ = (Index("ix_patient_feedback_patient", "patient_id", "nudge_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    nudge_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str | None] = mapped_column(ID)
    review_item_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None]  # a suppression lifted (by the patient or a clinician); null: in force


class RuleReportRow(Base):
    """A clinician's report that a rule fired wrongly or failed to fire for a nudge."""

    __tablename__ = "rule_reports"
    __table_args__ = (
        Index("ix_rule_reports_time", "created_at"),
        Index("ix_rule_reports_rule", "rule_id", "nudge_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(String(32))
    nudge_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # fired_wrongly | failed_to_fire
    reason_code: Mapped[str | None] = mapped_column(String(64))
    review_item_id: Mapped[str | None] = mapped_column(ID)
    patient_id: Mapped[str | None] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    reported_by: Mapped[str | None] = mapped_column(String(32))
    ruleset_digest: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]


class EventIntakeRow(Base):
    """An event outside the tracking plan: refused (422) or quarantined (``NUDGE_TRACKING_MODE=quarantine``).

    Never a raw event. A refused one keeps its type, time and the problems found (field and code,
    never a value); a quarantined one also keeps what the request envelope already admits (nudge id,
    session id, codes, counts and measures), so it can be inspected and replayed once the plan changes.
    """

    __tablename__ = "event_intake_issues"
    __table_args__ = (
        Index("ix_event_intake_issues_time", "occurred_at"),
        # a quarantined request's Idempotency-Key: a retry gets the first answer, concurrent duplicates race on it
        Index("ix_event_intake_issues_key", "patient_id", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))  # refused | quarantined
    type: Mapped[str] = mapped_column(String(32))
    nudge_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    plan_version: Mapped[str] = mapped_column(String(32))
    problems: Mapped[list[str]] = mapped_column(default=list)  # "body.properties.x:unknown_property"
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))  # quarantined only
    request: Mapped[str | None] = mapped_column(String(64))  # the request's fingerprint: a retry, or a reused key


class EventVolumeDailyRow(Base):
    """Raw events the retention job deleted, per UTC day (of ``occurred_at``) and type, for the volume report."""

    __tablename__ = "event_volume_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    patients: Mapped[int] = mapped_column(Integer, default=0)  # the most distinct patients of one retention run


class PatientNudgeOutcomeRow(Base):
    """Per patient and nudge, the counts of raw events the retention job deleted (``nudge_id`` '' for activity)."""

    __tablename__ = "patient_nudge_outcomes"

    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    nudge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    dismissed: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    activity: Mapped[int] = mapped_column(Integer, default=0)
    activity_minutes: Mapped[int] = mapped_column(Integer, default=0)
    last_delivered_at: Mapped[datetime | None]  # the last delivered event or serve deleted (cooldowns read it)
    last_completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
