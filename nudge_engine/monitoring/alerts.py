"""Raise alerts three ways: a structured log event, Prometheus metrics, an audit record.

The metrics live on the registry passed in (the API's, the scheduler's, or a test's own):

* ``nudge_monitor_value{check, subject}``: the last measured value of every check;
* ``nudge_monitor_alert_active{check, subject}``: 1 while the check alerts, else 0;
* ``nudge_monitor_alerts_total{check}``: alerts raised so far.

Audit records (``alert_raised``, actor ``system``) carry only codes and whole numbers: the value and
threshold in thousandths (audit details hold no floats). They are appended in the caller's
transaction; the caller commits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from nudge_engine.audit.model import AuditEvent, EventType
from nudge_engine.logs import get_logger
from nudge_engine.monitoring.checks import Finding, Status

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nudge_engine.audit.trail import AuditTrail

log = get_logger("nudge_engine.monitoring")


def _milli(x: float | None) -> int | None:
    if x is None or not math.isfinite(x):
        return None
    return round(min(max(float(x), -1e12), 1e12) * 1000)


def alert_event(finding: Finding, *, window_days: int) -> AuditEvent:
    return AuditEvent(
        EventType.ALERT_RAISED, "system",
        details={"check": finding.check, "subject": finding.subject, "value_milli": _milli(finding.value),
                 "threshold_milli": _milli(finding.threshold), "reference_milli": _milli(finding.reference),
                 "window_days": window_days},
    )


class AlertSink:
    """One per process (metrics register once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.value = Gauge("nudge_monitor_value", "Last value measured by a monitoring check.",
                           ["check", "subject"], registry=registry)
        self.active = Gauge("nudge_monitor_alert_active", "1 while a monitoring check is over its threshold.",
                            ["check", "subject"], registry=registry)
        self.raised = Counter("nudge_monitor_alerts", "Monitoring alerts raised.", ["check"], registry=registry)

    def emit(
        self,
        findings: Sequence[Finding],
        *,
        session: Session | None,
        audit: AuditTrail | None,
        now: datetime,
        window_days: int,
    ) -> list[Finding]:
        """Publish every finding as metrics; log, count and audit the alerting ones. Returns those."""
        alerts = [f for f in findings if f.alerting]
        for f in findings:
            if f.status is Status.SUPPRESSED:
                continue
            if f.value is not None:
                self.value.labels(f.check, f.subject).set(f.value)
            self.active.labels(f.check, f.subject).set(1 if f.alerting else 0)
        for f in alerts:
            self.raised.labels(f.check).inc()
            log.warning("alert_raised", check=f.check, subject=f.subject, value=f.value, threshold=f.threshold,
                        reference=f.reference, window_days=window_days)
        if alerts and session is not None and audit is not None:
            audit.append(session, [alert_event(f, window_days=window_days) for f in alerts], now=now)
        return alerts
