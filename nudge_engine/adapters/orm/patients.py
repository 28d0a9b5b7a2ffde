"""Patients (surrogate ids only), their preferences, and the encrypted identifier store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id

SHARD_KEYS = 65536


def shard_key_of(patient_id: str) -> int:
    """The shard key of a surrogate id (its first four hex digits): uniform, since ids are random."""
    return int(patient_id[:4], 16)


class PatientRow(Base):
    """A patient known by a random surrogate id. No identifiers here: see ``patient_identifiers``."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # 0..65535 from the random id: build workers claim shards as ranges of this key.
    shard_key: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime]
    # Birth year and month only (never the day): age rules assume the youngest possible age.
    birth_year: Mapped[int | None] = mapped_column(Integer)
    birth_month: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str | None] = mapped_column(String(16))
    deceased: Mapped[bool] = mapped_column(default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en-US")
    programme: Mapped[str | None] = mapped_column(String(64))
    enrolled_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(32), default="fhir")
    # Bumped on every change of clinical context; ready nudges remember the version they were built on.
    context_version: Mapped[int] = mapped_column(Integer, default=0)
    context_updated_at: Mapped[datetime | None]
    # Fingerprint of the stored context per origin: an unchanged re-import writes nothing.
    context_digests: Mapped[dict[str, str]] = mapped_column(default=dict)
    erased_at: Mapped[datetime | None]


class PatientPreferenceRow(Base):
    """Burden preferences: quiet hours, snooze, opt-outs, personal caps."""

    __tablename__ = "patient_preferences"

    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00")
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00")
    snoozed_until: Mapped[datetime | None]
    opted_out_categories: Mapped[list[str]] = mapped_column(default=list)
    opted_out_all: Mapped[bool] = mapped_column(default=False)
    max_per_day: Mapped[int | None] = mapped_column(Integer)
    max_per_week: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class PatientKeyRow(Base):
    """A patient's data key, wrapped by a key-encryption key. Destroying it erases the identifiers."""

    __tablename__ = "patient_keys"

    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    kek_version: Mapped[str] = mapped_column(String(32))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    destroyed_at: Mapped[datetime | None]


class PatientIdentifierRow(Base):
    """The identifier store: each identifier encrypted under the patient's data key.

    ``lookup_hash`` is a keyed HMAC (blind index) for the kinds that are looked up (source ids);
    it is null for everything else.
    """

    __tablename__ = "patient_identifiers"
    __table_args__ = (
        UniqueConstraint("kind", "lookup_hash"),
        Index("ix_patient_identifiers_patient", "patient_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    lookup_hash: Mapped[str | None] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
