"""Patients who could get nudges but have received none for a while: "why did this patient get nothing?"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.candidates import REASONS
from nudge_engine.personalization.plan import BatchPlan


@dataclass(frozen=True, slots=True)
class StarvedPatient:
    patient_idx: int
    days_without_delivery: float  # inf: nothing delivered within the event history the build loaded
    chosen_now: int  # nudges made ready in this plan (0: still starving)
    reasons: dict[str, int]  # why this plan's candidates were dropped, blocked or sent to review


def starvation_report(plan: BatchPlan, *, days: float) -> list[StarvedPatient]:
    """Patients eligible for at least one nudge with no delivery for ``days`` or more."""
    eligible = plan.eligible_count > 0
    starved = np.flatnonzero(eligible & (plan.days_since_delivery >= days))
    chosen = np.bincount(plan.chosen_row, minlength=len(plan))
    out = []
    for row in starved:
        out.append(
            StarvedPatient(
                int(plan.patient_idx[row]), float(plan.days_since_delivery[row]), int(chosen[row]),
                _reasons(plan, int(row)),
            )
        )
    return out


def _reasons(plan: BatchPlan, row: int) -> dict[str, int]:
    mine: npt.NDArray[np.int8] = plan.dropped_reason[plan.dropped_row == row]
    counts = {REASONS[c].value: int(n) for c, n in enumerate(np.bincount(mine, minlength=len(REASONS))) if n}
    blocked = int((plan.blocked_row == row).sum())
    review = int((plan.review_row == row).sum())
    if blocked:
        counts["blocked_by_rule"] = counts.get("blocked_by_rule", 0) + blocked
    if review:
        counts["review"] = review
    return counts
