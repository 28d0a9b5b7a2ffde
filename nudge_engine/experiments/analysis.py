"""Results of one experiment: SRM, outcome rates per arm with intervals, the same per segment, harm flags.

Outcomes count from each patient's first exposure to the end of the analysis window:

* **completion**: completed nudges per delivered nudge (ratio of sums, delta-method interval);
* **activity**: logged activity minutes per exposed day (per-patient mean).

Segments are those the patient was in at first exposure (before any effect of the arm). A segment
is flagged for **harm** when an arm does worse than control there on either outcome, by a one-sided
test whose p-values are Holm-adjusted over every (arm, segment, outcome) tested in the experiment.
Cells with fewer than ``min_cell`` patients in the arm or in control are suppressed (no numbers)
and not tested; a holdout arm is a reference, not a treatment, so it is not tested for harm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.experiments.model import ExperimentSpec
from nudge_engine.experiments.srm import SRM_ALPHA, SrmResult, sample_ratio_mismatch
from nudge_engine.experiments.stats import Estimate, difference, holm, lower_tail_p, mean, ratio_of_sums

ALL = "all"
METRICS = ("completion", "activity")


@dataclass(frozen=True, slots=True)
class ExposureData:
    """One row per exposed patient of one experiment (no patient ids: analysis needs none)."""

    arm: npt.NDArray[np.str_]
    delivered: npt.NDArray[np.float64]
    completed: npt.NDArray[np.float64]
    activity_minutes: npt.NDArray[np.float64]
    exposure_days: npt.NDArray[np.float64]
    segments: Sequence[frozenset[str]]

    def __len__(self) -> int:
        return len(self.arm)

    def take(self, mask: npt.NDArray[np.bool_]) -> ExposureData:
        idx = np.flatnonzero(mask)
        return ExposureData(self.arm[idx], self.delivered[idx], self.completed[idx], self.activity_minutes[idx],
                            self.exposure_days[idx], [self.segments[int(i)] for i in idx])

    @property
    def activity_per_day(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = self.activity_minutes / np.maximum(self.exposure_days, 1.0)
        return out


@dataclass(frozen=True, slots=True)
class Cell:
    """One arm within one population (``all`` or a segment)."""

    segment: str
    arm: str
    patients: int | None  # None: suppressed (fewer than min_cell)
    delivered: int | None
    completion: Estimate | None
    activity: Estimate | None
    completion_diff: Estimate | None = None  # arm minus control
    activity_diff: Estimate | None = None
    harm_p: dict[str, float] = field(default_factory=dict)  # Holm-adjusted one-sided p per metric
    harm: bool = False

    @property
    def suppressed(self) -> bool:
        return self.patients is None

    def as_dict(self) -> dict[str, Any]:
        def est(e: Estimate | None) -> dict[str, float] | None:
            return e.as_dict() if e is not None else None

        return {
            "segment": self.segment, "arm": self.arm, "suppressed": self.suppressed, "patients": self.patients,
            "delivered": self.delivered, "completion": est(self.completion), "activity": est(self.activity),
            "completion_diff": est(self.completion_diff), "activity_diff": est(self.activity_diff),
            "harm_p": {k: float(f"{v:.3g}") for k, v in self.harm_p.items()}, "harm": self.harm,
        }


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    experiment_id: str
    control: str
    arms: tuple[str, ...]
    holdout_arms: tuple[str, ...]
    srm: SrmResult
    overall: tuple[Cell, ...]
    segments: tuple[Cell, ...]
    confidence: float
    min_cell: int

    @property
    def harmed(self) -> list[Cell]:
        return [c for c in (*self.overall, *self.segments) if c.harm]

    def cell(self, arm: str, segment: str = ALL) -> Cell:
        return next(c for c in (*self.overall, *self.segments) if c.arm == arm and c.segment == segment)

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment_id, "control": self.control, "arms": list(self.arms),
            "holdout_arms": list(self.holdout_arms), "confidence": self.confidence, "min_cell": self.min_cell,
            "srm": self.srm.as_dict(), "overall": [c.as_dict() for c in self.overall],
            "segments": [c.as_dict() for c in self.segments],
            "harm": [{"arm": c.arm, "segment": c.segment, "harm_p": c.harm_p} for c in self.harmed],
        }


def _cell(data: ExposureData, segment: str, arm: str, *, min_cell: int, confidence: float) -> Cell:
    mine = data.take(data.arm == arm)
    if len(mine) < min_cell:
        return Cell(segment, arm, None, None, None, None)
    return Cell(
        segment, arm, len(mine), int(mine.delivered.sum()),
        ratio_of_sums(mine.completed, mine.delivered, confidence=confidence),
        mean(mine.activity_per_day, confidence=confidence),
    )


def _with_diffs(cells: list[Cell], control: str, confidence: float) -> list[Cell]:
    base = next(c for c in cells if c.arm == control)
    out = []
    for c in cells:
        if c.arm == control or c.suppressed or base.suppressed:
            out.append(c)
            continue
        out.append(Cell(c.segment, c.arm, c.patients, c.delivered, c.completion, c.activity,
                        difference(c.completion, base.completion, confidence=confidence),
                        difference(c.activity, base.activity, confidence=confidence)))
    return out


def analyse(
    spec: ExperimentSpec,
    data: ExposureData,
    *,
    min_cell: int = 11,
    confidence: float = 0.95,
    harm_alpha: float = 0.05,
    srm_alpha: float = SRM_ALPHA,
) -> ExperimentResult:
    counts = {a: int((data.arm == a).sum()) for a in spec.arm_ids}
    srm = sample_ratio_mismatch(counts, spec.shares, alpha=srm_alpha)
    overall = _with_diffs([_cell(data, ALL, a, min_cell=min_cell, confidence=confidence) for a in spec.arm_ids],
                          spec.control, confidence)
    names = sorted({s for segs in data.segments for s in segs})
    by_segment: list[Cell] = []
    for name in names:
        sub = data.take(np.array([name in s for s in data.segments], dtype=bool))
        by_segment.extend(_with_diffs(
            [_cell(sub, name, a, min_cell=min_cell, confidence=confidence) for a in spec.arm_ids],
            spec.control, confidence,
        ))
    holdouts = tuple(a.id for a in spec.arms if a.holdout)
    cells = overall + by_segment
    tested: list[tuple[int, str, float]] = []
    for i, c in enumerate(cells):
        if c.arm == spec.control or c.arm in holdouts:
            continue
        for metric, diff in (("completion", c.completion_diff), ("activity", c.activity_diff)):
            if diff is not None:
                tested.append((i, metric, lower_tail_p(diff)))
    adjusted = holm([p for _, _, p in tested])
    harm_p: dict[int, dict[str, float]] = {}
    for (i, metric, _), p_adj in zip(tested, adjusted, strict=True):
        harm_p.setdefault(i, {})[metric] = p_adj
    final = [
        Cell(c.segment, c.arm, c.patients, c.delivered, c.completion, c.activity, c.completion_diff,
             c.activity_diff, harm_p.get(i, {}), any(p < harm_alpha for p in harm_p.get(i, {}).values()))
        for i, c in enumerate(cells)
    ]
    return ExperimentResult(
        spec.id, spec.control, spec.arm_ids, holdouts, srm, tuple(final[: len(overall)]),
        tuple(final[len(overall) :]), confidence, min_cell,
    )
