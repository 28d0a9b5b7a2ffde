"""Retrain the ranking models from logged decisions (the scheduled ``retrain`` job).

A logged decision is a served top pick: the patient's context, permitted and caution sets and the
propensity stored with the build decision, and the nudge served. Its reward is the health outcome
of the patient's programme (:mod:`nudge_engine.personalization.rewards`): the healthy behaviour
the nudge serves, done within the programme's window after the serve (a completed walk, logged
activity minutes, a medication taken), never an open or a tap. New model versions (segment baseline and bandit)
are stored in ``model_versions`` with their own serialisation, together with a ``model_retrained``
audit record, in one transaction. The build switches from the baseline to the bandit once the
bandit has learned from ``bandit_min_rows`` decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.orm import ModelVersionRow, PatientDecisionRow, PatientEventRow, PatientRow, ReadyNudgeRow
from nudge_engine.adapters.unit_of_work import UnitOfWork
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.context import condition_pairs
from nudge_engine.personalization.events import EventColumns
from nudge_engine.personalization.ope import LoggedDecisions
from nudge_engine.personalization.programmes import ProgrammeSet
from nudge_engine.personalization.rewards import ServedDecisions
from nudge_engine.personalization.segments import SegmentModel
from nudge_engine.personalization.training import retrain_on_outcomes
from nudge_engine.services.build.models import BANDIT_KIND, BASELINE_KIND, latest_model


@dataclass(frozen=True, slots=True)
class RetrainResult:
    rows: int
    baseline_version: str | None
    bandit_version: str | None


def load_logged_decisions(
    session: Session, *, since: datetime, until: datetime, catalog: Catalog, segments: SegmentModel,
    reward_window: timedelta = timedelta(hours=48),
) -> tuple[LoggedDecisions, ServedDecisions, EventColumns]:
    """Served top picks in [since, until) with their logged context and propensity, the serves to
    reward, and the patients' events after them (rows of ``ServedDecisions`` number the patients)."""
    served = session.execute(
        select(ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id, ReadyNudgeRow.served_at, PatientDecisionRow.chosen,
               PatientDecisionRow.segments, PatientRow.programme)
        .join(PatientDecisionRow, PatientDecisionRow.id == ReadyNudgeRow.decision_id)
        .join(PatientRow, PatientRow.id == ReadyNudgeRow.patient_id)
        .where(and_(ReadyNudgeRow.status == "served", ReadyNudgeRow.served_at >= since,
                    ReadyNudgeRow.served_at < until))
    ).all()
    index = {nid: i for i, nid in enumerate(catalog.ids)}
    seg_index = {sid: j for j, sid in enumerate(segments.ids)}
    rows = []
    for r in served:
        top = (r.chosen or [{}])[0]
        doc = top.get("components") or {}
        if top.get("nudge") != r.nudge_id or "permitted" not in doc or not top.get("propensity"):
            continue  # only the logged top pick has a propensity and its replay context
        rows.append((r, top, doc))
    n, k = len(rows), len(catalog.ids)
    width = len(rows[0][2].get("context", [])) if rows else 0
    behaviour = np.zeros((n, width))
    membership = np.zeros((n, len(segments.ids)), dtype=bool)
    permitted = np.zeros((n, k), dtype=bool)
    caution = np.zeros((n, k), dtype=bool)
    action = np.zeros(n, dtype=np.intp)
    propensity = np.ones(n)
    reward = np.zeros(n)
    for i, (r, top, doc) in enumerate(rows):
        behaviour[i, : len(doc["context"])] = [v if v is not None else 0.0 for v in doc["context"]]
        for sid in r.segments or ():
            if sid in seg_index:
                membership[i, seg_index[sid]] = True
        for nid in doc["permitted"]:
            if nid in index:
                permitted[i, index[nid]] = True
        for nid in doc.get("caution", ()):
            if nid in index:
                caution[i, index[nid]] = True
        action[i] = index.get(r.nudge_id, 0)
        permitted[i, action[i]] = True
        propensity[i] = float(top["propensity"])
    patients = sorted({r.patient_id for r, _, _ in rows})
    number = {pid: k for k, pid in enumerate(patients)}
    served_decisions = ServedDecisions(
        row=np.array([number[r.patient_id] for r, _, _ in rows], dtype=np.int32),
        nudge=action.astype(np.int32),
        served_s=np.array([r.served_at.timestamp() for r, _, _ in rows], dtype=np.float64),
        programme=np.array([r.programme or "" for r, _, _ in rows], dtype=np.str_),
    )
    events = _events_after(session, patients, number, rows, catalog=catalog, window=reward_window)
    logged = LoggedDecisions(
        behaviour=behaviour, membership=membership, segment_ids=tuple(segments.ids), nudge_ids=tuple(catalog.ids),
        nudge_category=catalog.category_code, priority=catalog.priority.astype(np.float64), permitted=permitted,
        caution=caution, action=action, reward=reward, propensity=propensity,
    )
    return logged, served_decisions, events


def _events_after(
    session: Session, patients: list[str], number: dict[str, int], rows: list[Any], *, catalog: Catalog,
    window: timedelta,
) -> EventColumns:
    if not rows:
        return EventColumns.empty()
    start = min(r.served_at for r, _, _ in rows)
    end = max(r.served_at for r, _, _ in rows) + window
    found = [
        e for chunk in chunked(patients)
        for e in session.execute(
            select(PatientEventRow.patient_id, PatientEventRow.type, PatientEventRow.nudge_id,
                   PatientEventRow.occurred_at, PatientEventRow.properties)
            .where(PatientEventRow.patient_id.in_(chunk), PatientEventRow.occurred_at >= start,
                   PatientEventRow.occurred_at < end)
        )
    ]
    if not found:
        return EventColumns.empty()
    return EventColumns.from_records(
        patient_row=[number[e.patient_id] for e in found], types=[e.type for e in found],
        nudge_ids=[e.nudge_id for e in found], ts=[e.occurred_at.timestamp() for e in found],
        minutes=[(e.properties or {}).get("minutes") for e in found], catalog=catalog,
    )


def retrain_models(
    uow_factory: Callable[[], UnitOfWork], *, audit: AuditTrail, catalog: Catalog, segments: SegmentModel,
    programmes: ProgrammeSet, now: datetime, lookback: timedelta = timedelta(days=14),
) -> RetrainResult:
    """Fit new model versions from the decisions served since the last training (one transaction)."""
    with uow_factory() as uow:
        session = uow.session
        base_row, bandit_row = latest_model(session, BASELINE_KIND), latest_model(session, BANDIT_KIND)
        since = base_row.created_at if base_row is not None else now - lookback
        logged, served, events = load_logged_decisions(
            session, since=since, until=now, catalog=catalog, segments=segments
        )
        if not len(logged):
            return RetrainResult(0, None, None)
        baseline = SegmentBaseline.from_bytes(base_row.blob) if base_row is not None and base_row.blob else None
        bandit = LinearThompson.from_bytes(bandit_row.blob) if bandit_row is not None and bandit_row.blob else None
        if baseline is not None and (baseline.nudge_ids != catalog.ids or baseline.segment_ids != segments.ids):
            baseline = None  # the catalog or segments changed: start the statistics afresh
        trained, outcomes = retrain_on_outcomes(
            logged, served=served, events=events, programmes=programmes, catalog=catalog, now=now,
            baseline=baseline, bandit=bandit, interactions=condition_pairs(segments.spec),
        )
        total = trained.rows + int((bandit_row.metrics or {}).get("rows", 0) if bandit_row is not None else 0)
        session.add_all([
            ModelVersionRow(id=trained.baseline.version, kind=BASELINE_KIND, created_at=now,
                            params={"segments": len(segments.ids), "nudges": len(catalog.ids)},
                            metrics={"rows": trained.rows}, blob=trained.baseline.to_bytes()),
            ModelVersionRow(id=trained.bandit.version, kind=BANDIT_KIND, created_at=now, params={},
                            metrics={"rows": total, "reward_rate_milli": int(1000 * float(outcomes.reward.mean())),
                                     "open_rate_milli": int(1000 * float(outcomes.opened.mean()))},
                            blob=trained.bandit.to_bytes()),
        ])
        audit.append(session, [AuditEvent(
            "model_retrained", "system",
            details={"rows": trained.rows, "baseline": trained.baseline.version, "bandit": trained.bandit.version},
        )], now=now)
        uow.commit()
        return RetrainResult(trained.rows, trained.baseline.version, trained.bandit.version)
