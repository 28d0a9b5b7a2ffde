"""Experiments and their deterministic assignments and exposures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    salt: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]


class ExperimentAssignmentRow(Base):
    __tablename__ = "experiment_assignments"
    __table_args__ = (Index("ix_experiment_assignments_arm", "experiment_id", "arm"),)

    experiment_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    arm: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime]
    first_exposed_at: Mapped[datetime | None]
