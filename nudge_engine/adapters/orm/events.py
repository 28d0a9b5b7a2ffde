"""Patient events reported by the app backend, with idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


class PatientEventRow(Base):
    __tablename__ = "patient_events"
    __table_args__ = (
        UniqueConstraint("patient_id", "idempotency_key"),
        Index("ix_patient_events_patient_time", "patient_id", "occurred_at"),
        Index("ix_patient_events_time", "occurred_at"),  # retention scans by age
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    nudge_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
