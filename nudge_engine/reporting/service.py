"""Run a monitoring checkup and write the report (what ``nudge-engine report --out DIR`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import BuildCycleRow, PatientEventRow
from nudge_engine.experiments.model import ExperimentsConfig
from nudge_engine.monitoring.checkup import Checkup, run_checkup
from nudge_engine.monitoring.settings import MonitorSettings
from nudge_engine.reporting.document import report_document
from nudge_engine.reporting.render import write_report


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    json: Path
    checkup: Checkup
    document: dict[str, Any]


def default_as_of(session: Session, now: datetime) -> datetime:
    """``now``, or just after the newest build or event when that lies later (a simulation ahead of the clock)."""
    candidates = [now]
    last_cycle = session.scalar(select(func.max(BuildCycleRow.as_of)))
    last_event = session.scalar(select(func.max(PatientEventRow.occurred_at)))
    candidates += [t for t in (last_cycle, last_event) if t is not None]
    latest = max(candidates)
    return latest if latest == now else latest + timedelta(seconds=1)


def generate_report(
    session: Session,
    out: Path,
    *,
    now: datetime,
    settings: MonitorSettings,
    experiments: ExperimentsConfig | None,
    generated_at: datetime,
    extra: dict[str, Any] | None = None,
) -> WrittenReport:
    """Read-only on the database: no alert is raised or audited by writing a report."""
    checkup = run_checkup(session, now=now, settings=settings, experiments=experiments)
    doc = report_document(checkup, generated_at=generated_at, extra=extra)
    html, json_path = write_report(out, doc)
    return WrittenReport(html, json_path, checkup, doc)
