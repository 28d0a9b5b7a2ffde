"""Clinical context: one row per coding of each FHIR resource, ready for columnar loading.

``origin`` says which kind of source wrote a row (fhir, synthea-csv, api, synthetic): an import
replaces only the rows of its own origin, so two exports of the same record (Synthea's FHIR and
CSV) do not overwrite each other on every re-import. ``PUT .../context`` replaces all origins.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from nudge_engine.adapters.orm.base import ID, Base, new_id


def _patient_fk() -> ForeignKey:
    return ForeignKey("patients.id", ondelete="CASCADE")


class ConditionRow(Base):
    __tablename__ = "conditions"
    __table_args__ = (Index("ix_conditions_patient", "patient_id"), Index("ix_conditions_code", "system", "code"))

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, _patient_fk())
    resource_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default="fhir")
    system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(256))
    clinical_status: Mapped[str | None] = mapped_column(String(32))
    verification_status: Mapped[str | None] = mapped_column(String(32))
    onset_at: Mapped[datetime | None]
    onset_date_only: Mapped[bool] = mapped_column(default=False)
    abatement_at: Mapped[datetime | None]
    abatement_date_only: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime | None]
    recorded_date_only: Mapped[bool] = mapped_column(default=False)


class ProcedureRow(Base):
    __tablename__ = "procedures"
    __table_args__ = (Index("ix_procedures_patient", "patient_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, _patient_fk())
    resource_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default="fhir")
    system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str | None] = mapped_column(String(32))
    performed_at: Mapped[datetime | None]
    performed_date_only: Mapped[bool] = mapped_column(default=False)


class MedicationRow(Base):
    __tablename__ = "medications"
    __table_args__ = (Index("ix_medications_patient", "patient_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, _patient_fk())
    resource_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default="fhir")
    resource_type: Mapped[str] = mapped_column(String(32), default="MedicationStatement")
    system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str | None] = mapped_column(String(32))
    start_at: Mapped[datetime | None]
    start_date_only: Mapped[bool] = mapped_column(default=False)
    end_at: Mapped[datetime | None]
    end_date_only: Mapped[bool] = mapped_column(default=False)


class ObservationRow(Base):
    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_patient_code", "patient_id", "code"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, _patient_fk())
    resource_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default="fhir")
    system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str | None] = mapped_column(String(32))
    effective_at: Mapped[datetime | None]
    effective_date_only: Mapped[bool] = mapped_column(default=False)
    value_num: Mapped[float | None] = mapped_column(Float)
    value_unit: Mapped[str | None] = mapped_column(String(64))
    value_code_system: Mapped[str | None] = mapped_column(String(128))
    value_code: Mapped[str | None] = mapped_column(String(64))
    value_string: Mapped[str | None] = mapped_column(String(256))


class ClinicalFactRow(Base):
    """Clinician-recorded facts without a standard code (contract §5)."""

    __tablename__ = "clinical_facts"
    __table_args__ = (Index("ix_clinical_facts_patient", "patient_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, _patient_fk())
    resource_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default="fhir")
    kind: Mapped[str] = mapped_column(String(64))
    effective_at: Mapped[datetime | None]
    effective_date_only: Mapped[bool] = mapped_column(default=False)
    value_string: Mapped[str | None] = mapped_column(String(256))
    value_num: Mapped[float | None] = mapped_column(Float)
    value_unit: Mapped[str | None] = mapped_column(String(64))


class ClinicalPackRow(Base):
    """The same clinical rows of one patient and origin, packed for columnar reading (``clinical_packs``).

    Written by ``replace_contexts`` in the same transaction as the rows above and deleted with them,
    so the build and the guardrail benchmark read a patient's whole record as two byte strings.
    """

    __tablename__ = "clinical_packs"

    patient_id: Mapped[str] = mapped_column(ID, _patient_fk(), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16), primary_key=True)
    format: Mapped[int] = mapped_column(Integer)
    term_count: Mapped[int] = mapped_column(Integer)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    records: Mapped[bytes] = mapped_column(LargeBinary)
