"""Nudge catalog and segments (declarative and learned), with per-cycle membership."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base


class NudgeRow(Base):
    __tablename__ = "nudges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    category: Mapped[str] = mapped_column(String(32))
    intensity: Mapped[str] = mapped_column(String(16), default="none")
    duration_min: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(default=list)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    programme: Mapped[str | None] = mapped_column(String(64))
    target_segments: Mapped[list[str]] = mapped_column(default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    cooldown_hours: Mapped[int] = mapped_column(Integer, default=72)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    locale: Mapped[str] = mapped_column(String(16), default="en-US")
    content_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]


class SegmentRow(Base):
    __tablename__ = "segments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # declarative | learned
    version: Mapped[str] = mapped_column(String(32))
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class SegmentMembershipRow(Base):
    """Who was in which segment in which build cycle (answers "who was in S on date D")."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_patient", "patient_id", "cycle_id"),)

    cycle_id: Mapped[str] = mapped_column(ID, ForeignKey("build_cycles.id", ondelete="CASCADE"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(64), ForeignKey("segments.id"), primary_key=True)
