"""Clinician review queue (modelled on FHIR Task), scoped approvals and clinician accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


class ReviewItemRow(Base):
    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_status", "status", "priority", "created_at"),
        Index("ix_review_items_patient_nudge", "patient_id", "nudge_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    nudge_id: Mapped[str] = mapped_column(String(64))
    cycle_id: Mapped[str | None] = mapped_column(ID)
    decision_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|approved|rejected|expired
    priority: Mapped[int] = mapped_column(Integer, default=2)
    rule_ids: Mapped[list[str]] = mapped_column(default=list)
    fired: Mapped[list[Any]] = mapped_column(default=list)
    escalation: Mapped[str | None] = mapped_column(String(32))
    ruleset_digest: Mapped[str] = mapped_column(String(80))
    context_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(ID)
    reason_code: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(1000))
    scope_days: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)


class ApprovalScopeRow(Base):
    """"This nudge for this patient for N days": later identical items are approved automatically."""

    __tablename__ = "approval_scopes"
    __table_args__ = (Index("ix_approval_scopes_lookup", "patient_id", "nudge_id", "valid_until"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    nudge_id: Mapped[str] = mapped_column(String(64))
    review_item_id: Mapped[str] = mapped_column(ID, ForeignKey("review_items.id", ondelete="CASCADE"))
    rule_ids: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]
    valid_until: Mapped[datetime]


class ClinicianAccountRow(Base):
    __tablename__ = "clinician_accounts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
