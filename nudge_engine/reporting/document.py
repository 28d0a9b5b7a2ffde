"""The report's data, as one JSON-ready document (``report.json``); the HTML is drawn from the same document.

Aggregates only: no patient id, no free text. Counts of patients between 1 and ``min_cell - 1`` are
suppressed (``null``) wherever they appear: per-rule daily counts, experiment cells, starvation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudge_engine.monitoring.checks import Status
from nudge_engine.monitoring.checkup import Checkup

SCHEMA = "nudge-engine/report/1"


def _suppress(n: int, min_cell: int) -> int | None:
    return None if 0 < n < min_cell else n


def _rate_series(counts: list[int], built: list[int], min_cell: int) -> list[float | None]:
    return [None if (0 < c < min_cell) or not b else round(c / b, 4) for c, b in zip(counts, built, strict=True)]


def report_document(checkup: Checkup, *, generated_at: datetime, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    s = checkup.settings
    snap = checkup.snapshot
    mc = s.min_cell
    w = snap.windows
    by_check: dict[str, list[dict[str, Any]]] = {}
    for f in checkup.findings:
        by_check.setdefault(f.check, []).append(f.as_dict())
    days = [d.isoformat() for d in snap.days]
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": generated_at.isoformat(),
        "as_of": w.now.isoformat(),
        "windows": {"reference": [w.reference_start.isoformat(), w.reference_end.isoformat()],
                    "current": [w.current_start.isoformat(), w.now.isoformat()]},
        "privacy": {"min_cell": mc, "note": "aggregates only; patient counts under min_cell are suppressed (null)"},
        "thresholds": s.model_dump(),
        "alerts": [f.as_dict() for f in checkup.findings if f.status is Status.ALERT],
        "findings": by_check,
        "monitoring": {
            "days": days,
            "patients_built": [_suppress(n, mc) for n in snap.patients_built],
            "block_rate_by_rule": {r: _rate_series(c, snap.patients_built, mc)
                                   for r, c in sorted(snap.blocked_by_rule.items())},
            "review_rate_by_rule": {r: _rate_series(c, snap.patients_built, mc)
                                    for r, c in sorted(snap.review_by_rule.items())},
            "drift": {
                "features": by_check.get("feature_psi", []),
                "scores": by_check.get("score_psi", []),
            },
            "review": {
                "backlog_by_day": snap.review_backlog,
                "pending": snap.review_pending,
                "overdue": snap.review_overdue,
                "decided_in_window": len(snap.decision_hours),
                "time_to_decision_hours_p90": by_check.get("time_to_decision_p90", [{}])[0].get("value"),
            },
            "rates": {name: {"reference": ref.value, "current": cur.value,
                             "reference_n": _suppress(ref.denominator, mc), "current_n": _suppress(cur.denominator, mc)}
                      for name, (ref, cur) in sorted(snap.rates.items())},
            "starvation": {"eligible": _suppress(snap.eligible_patients, mc),
                           "starved": _suppress(snap.starved_patients, mc), "days": s.starvation_days},
            "freshness": {"last_context_update": snap.last_context_update.isoformat()
                          if snap.last_context_update else None,
                          "last_event": snap.last_event.isoformat() if snap.last_event else None},
        },
        "experiments": [r.as_dict() for r in checkup.experiments],
    }
    if extra:
        doc.update(extra)
    return doc
