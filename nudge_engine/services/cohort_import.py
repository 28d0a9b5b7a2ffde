"""Generate a synthetic cohort and import it: patients through the importer, app history as events.

Deterministic: the same seed gives the same patients (their source ids are stable), so running
it again changes nothing. Events get deterministic idempotency keys for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import bulk_insert
from nudge_engine.adapters.orm import PatientEventRow, PatientPreferenceRow, new_id
from nudge_engine.cohort.generate import generate_batches
from nudge_engine.cohort.model import SyntheticPatient
from nudge_engine.services.importing import Importer, ImportSummary

NudgeMapper = Callable[[str | None, str | None], str | None]


def import_cohort(
    importer: Importer,
    uow_factory: Callable[[], Any],
    *,
    patients: int,
    seed: int,
    as_of: datetime,
    now: datetime,
    nudge_for: NudgeMapper | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Generate ``patients`` synthetic patients and store them with their events, a batch per transaction."""
    summary = ImportSummary()
    for batch in generate_batches(patients, seed=seed, as_of=as_of, batch_size=batch_size):
        with uow_factory() as uow:
            records = [replace(p.record, timezone=p.timezone) for p in batch]
            enrolment = {p.record.identifiers.source_id: (str(p.programme), p.enrolled_at) for p in batch}
            ids = importer.store_in(
                uow.session, records, summary=summary, source="synthetic", now=now, enrolment=enrolment,
            )
            _store_history(uow.session, batch, ids, now=now, nudge_for=nudge_for)
            uow.commit()
        if progress:
            progress(len(batch))
    return summary


def _store_history(
    session: Session,
    batch: Sequence[SyntheticPatient],
    ids: Sequence[str],
    *,
    now: datetime,
    nudge_for: NudgeMapper | None,
) -> None:
    events: list[dict[str, Any]] = []
    prefs: list[dict[str, Any]] = []
    for patient, pid in zip(batch, ids, strict=True):
        prefs.append({"patient_id": pid, "quiet_start": "21:00", "quiet_end": "08:00", "opted_out_categories": [],
                      "opted_out_all": False, "updated_at": now})
        for i, ev in enumerate(patient.events):
            category = ev.category.value if ev.category else None
            nudge_id = nudge_for(category, ev.nudge_id) if nudge_for else ev.nudge_id
            properties: dict[str, Any] = {}
            if category:
                properties["category"] = category
            if ev.minutes is not None:
                properties["minutes"] = ev.minutes
            events.append({
                "id": new_id(), "patient_id": pid, "type": ev.kind.value, "nudge_id": nudge_id,
                "session_id": None, "occurred_at": ev.at, "received_at": now, "properties": properties,
                "idempotency_key": f"synthetic-{i}", "response": {},
            })
    bulk_insert(session, PatientPreferenceRow, prefs, ignore_conflicts=True)
    bulk_insert(session, PatientEventRow, events, ignore_conflicts=True)
