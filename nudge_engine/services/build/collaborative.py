"""The collaborative signal in the build: item factors fitted once per cycle, a component per shard.

Factors come from patient × nudge delivered/completed counts over a random sample of patients
(``shard_key`` is uniform) — raw events of the last 90 days plus the totals retention folded away.
Until the population has ``min_outcomes`` deliveries there is no model and the component is absent.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientEventRow, PatientRow
from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.collaborative import CollaborativeSettings, ItemFactors
from nudge_engine.personalization.events import EventType
from nudge_engine.services.retention import outcome_totals

HISTORY = timedelta(days=90)
SAMPLE_KEYS = 8192  # shard keys (of 65,536) in the fitting sample: about one patient in eight
SETTINGS = CollaborativeSettings()


def fit_item_factors(session: Session, catalog: Catalog, *, as_of: datetime) -> ItemFactors | None:
    sample = select(PatientRow.id).where(PatientRow.shard_key < SAMPLE_KEYS).scalar_subquery()
    counts = session.execute(
        select(PatientEventRow.patient_id, PatientEventRow.nudge_id, PatientEventRow.type, func.count())
        .where(PatientEventRow.patient_id.in_(sample), PatientEventRow.type.in_(("delivered", "completed")),
               PatientEventRow.nudge_id.is_not(None), PatientEventRow.occurred_at >= as_of - HISTORY,
               PatientEventRow.occurred_at <= as_of)
        .group_by(PatientEventRow.patient_id, PatientEventRow.nudge_id, PatientEventRow.type)
    ).all()
    per_patient: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for patient_id, nudge_id, kind, n in counts:
        per_patient[patient_id][(str(nudge_id), str(kind))] = int(n)
    for (patient_id, nudge_id), (delivered, completed) in outcome_totals(session, list(per_patient)).items():
        cell = per_patient[patient_id]
        cell[(nudge_id, "delivered")] = cell.get((nudge_id, "delivered"), 0) + delivered
        cell[(nudge_id, "completed")] = cell.get((nudge_id, "completed"), 0) + completed
    index = {nid: j for j, nid in enumerate(catalog.ids)}
    patients = sorted(per_patient)
    delivered_m = np.zeros((len(patients), len(catalog.ids)))
    completed_m = np.zeros_like(delivered_m)
    for i, patient_id in enumerate(patients):
        for (nudge_id, kind), n in per_patient[patient_id].items():
            j = index.get(nudge_id)
            if j is not None:
                (delivered_m if kind == "delivered" else completed_m)[i, j] += n
    return ItemFactors.fit(delivered_m, completed_m, tuple(catalog.ids), SETTINGS)


def collaborative_component(batch: PatientBatch, factors: ItemFactors) -> np.ndarray:
    """(patients × nudges) component for one shard, from the patients' own loaded events."""
    ev = batch.events
    shape = (len(batch), len(factors.nudge_ids))
    delivered, completed = np.zeros(shape), np.zeros(shape)
    known = ev.nudge_idx >= 0
    for kind, matrix in ((EventType.DELIVERED, delivered), (EventType.COMPLETED, completed)):
        mask = known & (ev.type_code == kind)
        np.add.at(matrix, (ev.patient_row[mask], ev.nudge_idx[mask]), 1.0)
    return factors.component(delivered, completed)
