"""Intervals that cover the truth, harm flags with multiplicity correction, suppressed small cells."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_engine.experiments.analysis import ExposureData, analyse
from nudge_engine.experiments.loader import parse_experiments
from nudge_engine.experiments.stats import holm, ratio_of_sums

SPEC = parse_experiments({
    "version": "t1",
    "experiments": [{"id": "framing", "salt": "framing-salt-1", "control": "plain",
                     "starts_at": "2026-11-01T00:00:00Z",
                     "arms": [{"id": "plain", "weight": 1}, {"id": "social_proof", "weight": 1}]}],
}).experiment("framing")


def world(rng: np.random.Generator, n: int, *, effect: float, harm_in: str | None = None,
          harm: float = 0.0) -> ExposureData:
    arm = np.where(rng.random(n) < 0.5, "plain", "social_proof")
    segments = [frozenset({"older_adult"} if rng.random() < 0.3 else {"engaged"}) for _ in range(n)]
    base = rng.uniform(0.1, 0.4, n)  # patients differ: deliveries of one patient are correlated
    treated = arm == "social_proof"
    in_harm = np.array([harm_in in s for s in segments]) if harm_in else np.zeros(n, dtype=bool)
    p = base + np.where(treated & ~in_harm, effect, 0.0) + np.where(treated & in_harm, harm, 0.0)
    delivered = rng.integers(5, 15, n).astype(np.float64)
    completed = rng.binomial(delivered.astype(int), np.clip(p, 0, 1)).astype(np.float64)
    minutes = rng.gamma(2.0, 10.0, n) * 14
    return ExposureData(arm.astype(np.str_), delivered, completed, minutes, np.full(n, 14.0), segments)


def test_the_interval_for_a_planted_effect_covers_it_in_about_95_percent_of_runs() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    runs = 300
    for _ in range(runs):
        result = analyse(SPEC, world(rng, 400, effect=0.05))
        diff = result.cell("social_proof").completion_diff
        assert diff is not None
        covered += diff.covers(0.05)
    assert 0.90 <= covered / runs <= 0.99


def test_a_segment_doing_significantly_worse_than_control_is_flagged_as_harm() -> None:
    result = analyse(SPEC, world(np.random.default_rng(11), 2000, effect=0.05, harm_in="older_adult", harm=-0.12))
    flagged = {(c.arm, c.segment) for c in result.harmed}
    assert ("social_proof", "older_adult") in flagged
    assert ("social_proof", "engaged") not in flagged


def test_no_harm_is_flagged_when_the_arm_helps_everyone() -> None:
    result = analyse(SPEC, world(np.random.default_rng(12), 2000, effect=0.05))
    assert result.harmed == []


def test_cells_with_fewer_patients_than_the_minimum_are_suppressed_and_not_tested() -> None:
    data = world(np.random.default_rng(13), 400, effect=0.0)
    data = ExposureData(data.arm, data.delivered, data.completed, data.activity_minutes, data.exposure_days,
                        [s | ({"rare"} if i < 15 else set()) for i, s in enumerate(data.segments)])
    result = analyse(SPEC, data, min_cell=11)
    rare = [c for c in result.segments if c.segment == "rare"]
    assert rare and all(c.suppressed and c.completion is None and not c.harm_p for c in rare)
    assert "patients" in rare[0].as_dict() and rare[0].as_dict()["patients"] is None


def test_the_ratio_interval_uses_patients_as_units() -> None:
    # Two patients with all-or-nothing completion: the per-delivery binomial interval would be far narrower.
    est = ratio_of_sums(np.array([10.0, 0.0, 10.0, 0.0]), np.array([10.0, 10.0, 10.0, 10.0]))
    assert est is not None
    assert est.value == pytest.approx(0.5)
    assert est.high - est.low > 0.5


def test_holm_adjusts_the_smallest_p_value_by_the_family_size() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
