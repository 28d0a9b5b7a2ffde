"""Experiments in the database: definitions, assignments and first exposures, and the data analysis reads.

``record_assignments`` runs inside the caller's transaction (the build shard's): it never commits.
Assignment is sticky: the first stored arm of a patient stays, even if the file's weights change later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import bulk_insert, chunked
from nudge_engine.adapters.orm import ExperimentAssignmentRow, ExperimentRow, PatientDecisionRow, PatientEventRow
from nudge_engine.experiments.analysis import ExposureData
from nudge_engine.experiments.assignment import ArmAssignment
from nudge_engine.experiments.model import ExperimentsConfig, ExperimentSpec

DAY = timedelta(days=1)


def sync_experiments(session: Session, config: ExperimentsConfig) -> None:
    """Store (or update) each experiment's definition, so assignments can reference it.

    Build workers run this concurrently in their shard transactions: a new definition is inserted
    with ON CONFLICT DO NOTHING, so two workers meeting a new experiment at once never collide.
    """
    for spec in config.experiments:
        definition = spec.model_dump(mode="json")
        bulk_insert(session, ExperimentRow, [{
            "id": spec.id, "version": spec.version, "salt": spec.salt, "definition": definition,
            "starts_at": spec.starts_at, "ends_at": spec.ends_at,
        }], ignore_conflicts=True)
        row = session.get(ExperimentRow, spec.id)
        if row is not None and row.definition != definition:
            row.version, row.salt, row.definition = spec.version, spec.salt, definition
            row.starts_at, row.ends_at = spec.starts_at, spec.ends_at
    session.flush()


def record_assignments(
    session: Session,
    config: ExperimentsConfig,
    assignment: ArmAssignment,
    *,
    exposed: npt.NDArray[np.bool_],
    now: datetime,
) -> int:
    """Store each patient's arm (first time only) and first exposure; returns the rows newly exposed.

    ``exposed[i]``: the build had at least one guardrail-permitted nudge for patient ``i`` this cycle
    (for a held-out patient: would have had), which is what the sample-ratio check counts.
    """
    sync_experiments(session, config)
    ids = assignment.patient_ids
    newly = 0
    for experiment_id, arms in assignment.arms.items():
        members = np.flatnonzero(arms != "")
        if not len(members):
            continue
        bulk_insert(session, ExperimentAssignmentRow, [
            {"experiment_id": experiment_id, "patient_id": ids[i], "arm": str(arms[i]), "assigned_at": now,
             "first_exposed_at": None}
            for i in members
        ], ignore_conflicts=True)
        now_exposed = [ids[i] for i in members if exposed[i]]
        for chunk in chunked(now_exposed):
            result: Any = session.execute(
                update(ExperimentAssignmentRow)
                .where(ExperimentAssignmentRow.experiment_id == experiment_id,
                       ExperimentAssignmentRow.patient_id.in_(chunk),
                       ExperimentAssignmentRow.first_exposed_at.is_(None))
                .values(first_exposed_at=now)
            )
            newly += int(result.rowcount or 0)
    return newly


def exposure_counts(session: Session, experiment_id: str) -> dict[str, int]:
    rows = session.execute(
        select(ExperimentAssignmentRow.arm, ExperimentAssignmentRow.patient_id)
        .where(ExperimentAssignmentRow.experiment_id == experiment_id,
               ExperimentAssignmentRow.first_exposed_at.is_not(None))
    ).all()
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.arm] += 1
    return dict(counts)


def load_exposures(session: Session, spec: ExperimentSpec, *, until: datetime) -> ExposureData:
    """Per exposed patient: arm, outcomes from first exposure to ``until``, segments at first exposure."""
    assigned = session.execute(
        select(ExperimentAssignmentRow.patient_id, ExperimentAssignmentRow.arm,
               ExperimentAssignmentRow.first_exposed_at)
        .where(ExperimentAssignmentRow.experiment_id == spec.id,
               ExperimentAssignmentRow.first_exposed_at.is_not(None),
               ExperimentAssignmentRow.first_exposed_at < until)
        .order_by(ExperimentAssignmentRow.patient_id)
    ).all()
    ids = [a.patient_id for a in assigned]
    start = {a.patient_id: a.first_exposed_at for a in assigned}
    row_of = {pid: i for i, pid in enumerate(ids)}
    n = len(ids)
    delivered, completed, minutes = np.zeros(n), np.zeros(n), np.zeros(n)
    for chunk in chunked(ids):
        for e in session.execute(
            select(PatientEventRow.patient_id, PatientEventRow.type, PatientEventRow.occurred_at,
                   PatientEventRow.properties)
            .where(PatientEventRow.patient_id.in_(chunk), PatientEventRow.occurred_at >= spec.starts_at,
                   PatientEventRow.occurred_at < until,
                   PatientEventRow.type.in_(("delivered", "completed", "activity")))
        ):
            if e.occurred_at < start[e.patient_id]:
                continue
            i = row_of[e.patient_id]
            if e.type == "delivered":
                delivered[i] += 1
            elif e.type == "completed":
                completed[i] += 1
            else:
                minutes[i] += float((e.properties or {}).get("minutes") or 0.0)
    segments = _segments_at_exposure(session, ids, start, since=spec.starts_at - DAY, until=until)
    days = np.array([(until - start[pid]) / DAY for pid in ids], dtype=np.float64)
    return ExposureData(
        np.array([a.arm for a in assigned], dtype=np.str_), delivered, completed, minutes, days,
        [segments.get(pid, frozenset()) for pid in ids],
    )


def _segments_at_exposure(
    session: Session, ids: Sequence[str], start: dict[str, datetime], *, since: datetime, until: datetime
) -> dict[str, frozenset[str]]:
    """Segments of the last decision at or before first exposure (else the first decision after it)."""
    best: dict[str, tuple[bool, datetime, frozenset[str]]] = {}
    for chunk in chunked(ids):
        for d in session.execute(
            select(PatientDecisionRow.patient_id, PatientDecisionRow.created_at, PatientDecisionRow.segments)
            .where(PatientDecisionRow.patient_id.in_(chunk), PatientDecisionRow.created_at >= since,
                   PatientDecisionRow.created_at < until)
        ):
            before = d.created_at <= start[d.patient_id]
            current = best.get(d.patient_id)
            better = (
                current is None
                or (before and (not current[0] or d.created_at > current[1]))
                or (not before and not current[0] and d.created_at < current[1])
            )
            if better:
                best[d.patient_id] = (before, d.created_at, frozenset(d.segments or ()))
    return {pid: segs for pid, (_, _, segs) in best.items()}
