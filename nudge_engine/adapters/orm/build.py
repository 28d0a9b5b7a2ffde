"""Build cycles, their shards, candidate decisions, the ready queue and model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


class BuildCycleRow(Base):
    __tablename__ = "build_cycles"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | finished | failed
    as_of: Mapped[datetime]
    ruleset_digest: Mapped[str] = mapped_column(String(80))
    catalog_digest: Mapped[str] = mapped_column(String(80))
    model_version: Mapped[str | None] = mapped_column(String(64))
    shard_count: Mapped[int] = mapped_column(Integer, default=1)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BuildShardRow(Base):
    """A slice of the patients of one cycle, claimed by one worker (FOR UPDATE SKIP LOCKED)."""

    __tablename__ = "build_shards"

    cycle_id: Mapped[str] = mapped_column(ID, ForeignKey("build_cycles.id", ondelete="CASCADE"), primary_key=True)
    shard_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | claimed | done
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class PatientDecisionRow(Base):
    """What one build cycle decided for one patient, with every candidate accounted for.

    ``chosen``: ready nudges with score, score components, propensity and caution;
    ``review`` and ``blocked``: nudges with the rules that fired and their evidence;
    ``dropped``: nudge ids by coded reason (capped, quiet_hours, cooldown, opted_out, not_eligible ...).
    One row per patient keeps a million-patient cycle writable in minutes.
    """

    __tablename__ = "patient_decisions"
    __table_args__ = (
        UniqueConstraint("cycle_id", "patient_id"),
        Index("ix_patient_decisions_patient", "patient_id", "created_at"),
        Index("ix_patient_decisions_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    cycle_id: Mapped[str | None] = mapped_column(ID, ForeignKey("build_cycles.id", ondelete="SET NULL"))
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # ready | review | blocked | nothing
    chosen: Mapped[list[Any]] = mapped_column(default=list)
    review: Mapped[list[Any]] = mapped_column(default=list)
    blocked: Mapped[list[Any]] = mapped_column(default=list)
    dropped: Mapped[dict[str, Any]] = mapped_column(default=dict)
    segments: Mapped[list[str]] = mapped_column(default=list)
    experiments: Mapped[dict[str, Any]] = mapped_column(default=dict)  # experiment id -> arm (exposure)
    held_out: Mapped[bool] = mapped_column(default=False)
    withheld: Mapped[list[str]] = mapped_column(default=list)  # what a held-out patient would have got
    stage: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # programme, version, stage
    ruleset_digest: Mapped[str] = mapped_column(String(80))
    model_version: Mapped[str | None] = mapped_column(String(64))
    context_version: Mapped[int] = mapped_column(Integer, default=0)


class ReadyNudgeRow(Base):
    """A guardrail-checked nudge waiting to be served."""

    __tablename__ = "ready_nudges"
    __table_args__ = (
        UniqueConstraint("patient_id", "nudge_id", "cycle_id"),
        Index("ix_ready_nudges_serve", "patient_id", "status", "score"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    nudge_id: Mapped[str] = mapped_column(String(64))
    cycle_id: Mapped[str | None] = mapped_column(ID, ForeignKey("build_cycles.id", ondelete="SET NULL"))
    decision_id: Mapped[str | None] = mapped_column(ID)
    review_item_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | served | expired | superseded
    score: Mapped[float] = mapped_column(Float, default=0.0)
    caution: Mapped[list[str]] = mapped_column(default=list)
    context_version: Mapped[int] = mapped_column(Integer, default=0)
    ruleset_digest: Mapped[str] = mapped_column(String(80))
    # the nudge content the decision read (``domain.nudge.guarded_digest``); null: not recorded, re-checked at serve
    content_digest: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    not_before: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    served_at: Mapped[datetime | None]


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)  # the model's own serialisation (no pickle)
