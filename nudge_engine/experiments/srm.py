"""Sample-ratio mismatch: are exposed patients split across arms as the experiment says they should be?

A chi-square goodness-of-fit test of the exposure counts per arm against the declared shares. Counts
are of patients *exposed after guardrail filtering* (the build had at least one permitted nudge for
them), so a rule that removes more patients from one arm than another shows up here too. An alarm
at p < 0.001 means the comparison between arms cannot be trusted until the cause is found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import chisquare

SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    counts: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    alarm: bool
    alpha: float

    def as_dict(self) -> dict[str, object]:
        total = sum(self.counts.values())
        return {
            "counts": self.counts, "expected": {k: round(v, 1) for k, v in self.expected.items()},
            "observed_share": {k: round(v / total, 4) if total else None for k, v in self.counts.items()},
            "chi2": round(self.statistic, 3), "p_value": float(f"{self.p_value:.3g}"), "alarm": self.alarm,
            "alpha": self.alpha,
        }


def sample_ratio_mismatch(
    counts: Mapping[str, int], shares: Mapping[str, float], *, alpha: float = SRM_ALPHA
) -> SrmResult:
    """Chi-square test of ``counts`` against ``shares`` (normalised); no alarm without exposures."""
    arms = list(shares)
    observed = [int(counts.get(a, 0)) for a in arms]
    total = sum(observed)
    weight = sum(shares.values())
    expected = [total * shares[a] / weight for a in arms]
    if total == 0:
        return SrmResult(dict(zip(arms, observed, strict=True)), dict(zip(arms, expected, strict=True)), 0.0, 1.0,
                         False, alpha)
    stat, p = chisquare(observed, expected)
    return SrmResult(dict(zip(arms, observed, strict=True)), dict(zip(arms, expected, strict=True)), float(stat),
                     float(p), bool(p < alpha), alpha)
