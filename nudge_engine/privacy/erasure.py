"""Right to erasure: make a patient's identifiers unrecoverable and remove their clinical context.

One transaction (the caller's unit of work) does all of it, or none:

1. the patient's data key is destroyed and the identifier ciphertexts deleted (the vault);
2. conditions, procedures, medications, observations and clinical facts are deleted;
3. the patient row keeps only its random surrogate id: birth year/month, sex and context
   fingerprints are cleared, ``erased_at`` is set, and the context version moves on so that any
   ready nudge built on the old context is re-checked (and refused) before it is served;
4. an ``erased`` audit record is appended, holding the surrogate id and row counts only.

The audit trail is untouched otherwise: its records never held identifiers, so it still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import (
    ClinicalFactRow,
    ClinicalPackRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    PatientRow,
    ProcedureRow,
)
from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
from nudge_engine.audit.trail import AuditTrail
from nudge_engine.domain.errors import Conflict, NotFound
from nudge_engine.privacy.vault import IdentifierVault

CLINICAL_TABLES: dict[str, type[ConditionRow | ProcedureRow | MedicationRow | ObservationRow | ClinicalFactRow]] = {
    "conditions": ConditionRow,
    "procedures": ProcedureRow,
    "medications": MedicationRow,
    "observations": ObservationRow,
    "clinical_facts": ClinicalFactRow,
}


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure removed (row counts per clinical table)."""

    patient_id: str
    removed: dict[str, int]


def erase_patient(
    session: Session,
    *,
    patient_id: str,
    vault: IdentifierVault,
    audit: AuditTrail,
    now: datetime,
    actor_role: ActorRole = ActorRole.ADMIN,
    actor_id: str | None = None,
) -> Erasure:
    """Erase one patient (by surrogate id) inside the caller's transaction; never commits."""
    patient = session.get(PatientRow, patient_id, with_for_update=True)
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    if patient.erased_at is not None:
        raise Conflict(f"patient {patient_id} was already erased")
    vault.erase(session, patient_id, now=now)
    removed: dict[str, int] = {}
    for name, row in CLINICAL_TABLES.items():
        result = session.execute(delete(row).where(row.patient_id == patient_id))
        removed[name] = int(result.rowcount)  # type: ignore[attr-defined]
    session.execute(delete(ClinicalPackRow).where(ClinicalPackRow.patient_id == patient_id))  # the same rows, packed
    session.execute(
        update(PatientRow)
        .where(PatientRow.id == patient_id)
        .values(
            birth_year=None,
            birth_month=None,
            sex=None,
            context_digests={},
            context_version=PatientRow.context_version + 1,
            context_updated_at=now,
            erased_at=now,
        )
    )
    audit.append(
        session,
        [
            AuditEvent(
                event_type=EventType.ERASED,
                actor_role=actor_role,
                actor_id=actor_id,
                patient_ref=patient_id,
                details={f"{name}_removed": count for name, count in removed.items()},
            )
        ],
        now=now,
    )
    return Erasure(patient_id=patient_id, removed=removed)
