"""The append-only audit trail, its chain head and its signed checkpoints (contract §7).

See :mod:`nudge_engine.audit.trail` for how the chain is sealed under concurrent writers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from nudge_engine.adapters.orm.base import Base

SEQ = BigInteger().with_variant(Integer, "sqlite")


class CanonicalJSON(TypeDecorator[Any]):
    """A JSON column whose stored text is canonical (sorted keys, no spaces): exactly what is hashed.

    Binding writes that text itself (a ``str`` is taken as already canonical), so SQLite's TEXT and
    PostgreSQL's ``json`` (not ``jsonb``: ``json`` keeps the input text verbatim) hand the same bytes
    back to ``CAST(... AS TEXT)``, and verification hashes them without parsing (see
    ``nudge_engine.audit.canonical.record_bytes``). Reading through the ORM still yields objects.
    """

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: Any) -> str | None:
            if value is None or isinstance(value, str):
                return value
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

        return process


class AuditRecordRow(Base):
    """One audited decision or action. Never updated or deleted (a trigger enforces it on PostgreSQL)."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_time", "recorded_at"),
        Index("ix_audit_records_type", "event_type", "recorded_at"),
        Index("ix_audit_records_patient", "patient_ref"),
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime]
    event_type: Mapped[str] = mapped_column(String(48))
    actor_role: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(32))
    patient_ref: Mapped[str | None] = mapped_column(String(32))
    nudge_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(16))
    rule_ids: Mapped[list[str]] = mapped_column(CanonicalJSON, default=list)
    ruleset_digest: Mapped[str | None] = mapped_column(String(80))
    details: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHeadRow(Base):
    """The single row (id 1) holding the last sequence number and hash; writers lock it to append."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(SEQ)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class AuditCheckpointRow(Base):
    """A signed statement of the chain head; also written to files the application never rewrites."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    head_seq: Mapped[int] = mapped_column(SEQ)
    head_hash: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(SEQ)
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
