"""Patient events reported by the app backend, with idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


class PatientEventRow(Base):
    __tablename__ = "patient_events"
    # Stored in (patient, time) order: a build reads every recent event of a range of patients, and
    # events arrive interleaved across patients, so with the id as the key a million-patient build
    # reads a page per event. SQLite stores a WITHOUT ROWID table in its primary key's order (one
    # range read per patient); PostgreSQL uses the key as the index. The id stays unique and stays
    # the ORM's identity.
    __table_args__ = (
        PrimaryKeyConstraint("patient_id", "occurred_at", "id"),
        UniqueConstraint("id"),
        UniqueConstraint("patient_id", "idempotency_key"),
        Index("ix_patient_events_time", "occurred_at"),  # retention scans by age
        {"sqlite_with_rowid": False},
    )

    id: Mapped[str] = mapped_column(ID, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    nudge_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __mapper_args__ = {"primary_key": [id]}  # noqa: RUF012 - read once by the mapper
