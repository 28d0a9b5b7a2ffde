"""Judge a snapshot against the thresholds: every check gives a :class:`Finding`; those over a threshold alert.

Checks (``check`` code, ``subject``):

* ``feature_psi`` (feature name), ``score_psi`` (``top_score``): PSI current vs reference window;
* ``block_rate`` / ``review_rate`` (rule id): share of built patients with that rule firing moved by
  ``rule_rate_ratio`` times and at least ``rule_rate_min_change``, up or down;
* ``review_backlog``, ``review_overdue``, ``time_to_decision_p90``;
* ``serve_rate`` / ``open_rate`` / ``completion_rate``: fell below ``rate_drop_ratio`` of the reference;
* ``starved_share``: eligible patients with no delivery for ``starvation_days``;
* ``context_freshness`` / ``event_freshness``: hours since the last context update / event;
* ``srm`` and ``segment_harm`` come from experiment analysis (:func:`experiment_findings`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from nudge_engine.experiments.analysis import ExperimentResult
from nudge_engine.monitoring.psi import psi
from nudge_engine.monitoring.settings import MonitorSettings
from nudge_engine.monitoring.snapshot import MonitorSnapshot


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"
    SUPPRESSED = "suppressed"  # too few patients to say (or to show)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    subject: str
    value: float | None
    threshold: float
    status: Status
    reference: float | None = None

    @property
    def alerting(self) -> bool:
        return self.status is Status.ALERT

    def as_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 4)

        return {"check": self.check, "subject": self.subject, "value": r(self.value), "reference": r(self.reference),
                "threshold": self.threshold, "status": self.status.value}


def _psi_finding(check: str, subject: str, ref: np.ndarray, cur: np.ndarray, s: MonitorSettings) -> Finding:
    if min(len(ref), len(cur)) < s.min_cell:
        return Finding(check, subject, None, s.psi_alert, Status.SUPPRESSED)
    value = psi(ref, cur, bins=s.psi_bins)
    status = Status.ALERT if value >= s.psi_alert else Status.WARNING if value >= s.psi_warning else Status.OK
    return Finding(check, subject, value, s.psi_alert, status)


def _rule_findings(
    check: str, by_rule: dict[str, list[int]], snap: MonitorSnapshot, s: MonitorSettings
) -> list[Finding]:
    w = snap.windows
    cur_days = snap.day_index(w.current_start, w.now)
    ref_days = snap.day_index(w.reference_start, w.reference_end)
    built = np.asarray(snap.patients_built, dtype=np.float64)
    cur_built, ref_built = built[cur_days].sum(), built[ref_days].sum()
    out = []
    for rule, series in sorted(by_rule.items()):
        counts = np.asarray(series, dtype=np.float64)
        cur_n, ref_n = counts[cur_days].sum(), counts[ref_days].sum()
        if not cur_built or not ref_built:
            continue
        cur, ref = cur_n / cur_built, ref_n / ref_built
        if max(cur_n, ref_n) < s.min_cell:
            out.append(Finding(check, rule, None, s.rule_rate_ratio, Status.SUPPRESSED))
            continue
        ratio = (max(cur, ref) / min(cur, ref)) if min(cur, ref) > 0 else float("inf")
        moved = ratio >= s.rule_rate_ratio and abs(cur - ref) >= s.rule_rate_min_change
        out.append(Finding(check, rule, cur, s.rule_rate_ratio, Status.ALERT if moved else Status.OK, ref))
    return out


def evaluate(snap: MonitorSnapshot, s: MonitorSettings) -> list[Finding]:
    out: list[Finding] = []
    for name, (ref, cur) in sorted(snap.features.items()):
        out.append(_psi_finding("feature_psi", name, ref, cur, s))
    out.append(_psi_finding("score_psi", "top_score", snap.scores[0], snap.scores[1], s))
    out += _rule_findings("block_rate", snap.blocked_by_rule, snap, s)
    out += _rule_findings("review_rate", snap.review_by_rule, snap, s)

    def upper(check: str, subject: str, value: float | None, limit: float) -> Finding:
        status = Status.OK if value is None or value <= limit else Status.ALERT
        return Finding(check, subject, value, limit, status)

    out.append(upper("review_backlog", "pending", float(snap.review_pending), s.review_backlog_max))
    out.append(upper("review_overdue", "pending_past_due", float(snap.review_overdue), s.review_overdue_max))
    p90 = float(np.quantile(snap.decision_hours, 0.9)) if len(snap.decision_hours) else None
    out.append(upper("time_to_decision_p90", "hours", p90, s.time_to_decision_p90_hours))
    for name, (ref_rate, cur_rate) in sorted(snap.rates.items()):
        before, after = ref_rate.value, cur_rate.value
        if before is None or after is None or min(ref_rate.denominator, cur_rate.denominator) < s.min_cell:
            out.append(Finding(f"{name}_rate", name, after, s.rate_drop_ratio, Status.SUPPRESSED, before))
            continue
        dropped = after < s.rate_drop_ratio * before
        out.append(Finding(f"{name}_rate", name, after, s.rate_drop_ratio,
                           Status.ALERT if dropped else Status.OK, before))
    if snap.eligible_patients >= s.min_cell:
        share = snap.starved_patients / snap.eligible_patients
        out.append(upper("starved_share", f"no_delivery_{s.starvation_days}d", share, s.starved_max_fraction))
    else:
        out.append(Finding("starved_share", f"no_delivery_{s.starvation_days}d", None, s.starved_max_fraction,
                           Status.SUPPRESSED))
    now = snap.windows.now
    for check, last, limit in (("context_freshness", snap.last_context_update, s.context_stale_hours),
                               ("event_freshness", snap.last_event, s.events_stale_hours)):
        hours = (now - last).total_seconds() / 3600 if last is not None else None
        status = Status.ALERT if hours is None or hours > limit else Status.OK
        out.append(Finding(check, "hours_since_last", hours, limit, status))
    return out


def experiment_findings(results: Iterable[ExperimentResult], s: MonitorSettings) -> list[Finding]:
    """An SRM finding per experiment and a harm finding per flagged (arm, segment)."""
    out: list[Finding] = []
    for r in results:
        out.append(Finding("srm", r.experiment_id, r.srm.p_value, s.srm_alpha,
                           Status.ALERT if r.srm.alarm else Status.OK))
        for c in r.harmed:
            p = min(c.harm_p.values())
            out.append(Finding("segment_harm", f"{r.experiment_id}:{c.arm}:{c.segment}", p, s.harm_alpha,
                               Status.ALERT))
    return out
