"""One monitoring run: snapshot, experiment analysis, findings, alerts (the scheduler's ``monitor`` job).

Run it inside a unit of work and commit: alert audit records are appended to the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import ExperimentAssignmentRow, PatientRow
from nudge_engine.experiments.analysis import ExperimentResult, analyse
from nudge_engine.experiments.assignment import buckets
from nudge_engine.experiments.model import ExperimentsConfig
from nudge_engine.experiments.repository import load_exposures
from nudge_engine.monitoring.alerts import AlertSink
from nudge_engine.monitoring.checks import Finding, evaluate, experiment_findings
from nudge_engine.monitoring.queries import collect_snapshot
from nudge_engine.monitoring.settings import MonitorSettings
from nudge_engine.monitoring.snapshot import MonitorSnapshot

if TYPE_CHECKING:
    from nudge_engine.audit.trail import AuditTrail


@dataclass
class Checkup:
    now: datetime
    settings: MonitorSettings
    snapshot: MonitorSnapshot
    experiments: list[ExperimentResult]
    findings: list[Finding]

    @property
    def alerts(self) -> list[Finding]:
        return [f for f in self.findings if f.alerting]


def held_out_patients(session: Session, experiments: ExperimentsConfig | None) -> set[str]:
    """Patients who get no nudges by design: the global holdout and the holdout arms."""
    if experiments is None:
        return set()
    out: set[str] = set()
    if experiments.global_holdout is not None and experiments.global_holdout.fraction > 0:
        ids = list(session.scalars(select(PatientRow.id)))
        inside = buckets(ids, experiments.global_holdout.salt) < experiments.global_holdout.fraction
        out |= {pid for pid, h in zip(ids, inside, strict=True) if h}
    for spec in experiments.experiments:
        arms = [a.id for a in spec.arms if a.holdout]
        if arms:
            out |= set(session.scalars(select(ExperimentAssignmentRow.patient_id).where(
                ExperimentAssignmentRow.experiment_id == spec.id, ExperimentAssignmentRow.arm.in_(arms))))
    return out


def run_checkup(
    session: Session,
    *,
    now: datetime,
    settings: MonitorSettings,
    experiments: ExperimentsConfig | None = None,
    sink: AlertSink | None = None,
    audit: AuditTrail | None = None,
) -> Checkup:
    snapshot = collect_snapshot(session, now=now, settings=settings,
                                held_out=held_out_patients(session, experiments))
    results = [
        analyse(spec, load_exposures(session, spec, until=now), min_cell=settings.min_cell,
                confidence=settings.confidence, harm_alpha=settings.harm_alpha, srm_alpha=settings.srm_alpha)
        for spec in (experiments.experiments if experiments else ())
        if spec.starts_at < now
    ]
    findings = evaluate(snapshot, settings) + experiment_findings(results, settings)
    if sink is not None:
        sink.emit(findings, session=session, audit=audit, now=now, window_days=settings.window_days)
    return Checkup(now, settings, snapshot, results, findings)
