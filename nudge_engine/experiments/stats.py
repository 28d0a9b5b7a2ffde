"""Estimates with confidence intervals, with the patient as the unit of randomisation.

* ``ratio_of_sums``: a rate per delivered nudge (Σ completed / Σ delivered over patients). Deliveries
  of one patient are not independent, so the standard error comes from the delta method over
  patients (a cluster-robust interval), not from a binomial over deliveries.
* ``mean``: a per-patient mean (activity minutes per day) with the normal interval.
* ``difference``: arm minus control, independent samples (Welch-style normal interval).
* ``lower_tail_p``: one-sided p-value that an arm does *worse* than control; ``holm`` adjusts a family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    se: float
    low: float
    high: float

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {"value": round(self.value, digits), "low": round(self.low, digits), "high": round(self.high, digits),
                "se": round(self.se, digits)}


def z_of(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2.0))


def _interval(value: float, se: float, confidence: float) -> Estimate:
    z = z_of(confidence)
    return Estimate(value, se, value - z * se, value + z * se)


def ratio_of_sums(
    numerator: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64], *, confidence: float = 0.95
) -> Estimate | None:
    """Σ numerator / Σ denominator with a delta-method interval over units; None without denominator."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    n = len(num)
    if n < 2 or den.sum() <= 0:
        return None
    ratio = float(num.sum() / den.sum())
    resid = num - ratio * den
    se = float(math.sqrt((resid**2).sum() / (n * (n - 1))) / den.mean())
    return _interval(ratio, se, confidence)


def mean(values: npt.NDArray[np.float64], *, confidence: float = 0.95) -> Estimate | None:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return None
    return _interval(float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))), confidence)


def difference(a: Estimate | None, b: Estimate | None, *, confidence: float = 0.95) -> Estimate | None:
    """``a - b`` for independent estimates."""
    if a is None or b is None:
        return None
    return _interval(a.value - b.value, math.hypot(a.se, b.se), confidence)


def lower_tail_p(diff: Estimate) -> float:
    """P-value of H0 "no worse than control" against H1 "worse" (one-sided, normal)."""
    if diff.se <= 0:
        return 0.0 if diff.value < 0 else 1.0
    return float(norm.cdf(diff.value / diff.se))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control, any dependence)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
