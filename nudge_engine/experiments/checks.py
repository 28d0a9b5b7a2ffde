"""``experiments check``: problems that make results untrustworthy, found before any patient is assigned.

* **overlap** (error): two experiments that both set a lever (ranking policy or no-nudge arm) can run
  at the same time for the same patients. Assignment then gives each patient to the first one only,
  so the second silently sees a different population; fix the dates or the eligibility.
* **overlap_shared** (warning): overlapping experiments that do not compete for a lever; they are
  randomised independently, which is fine, but the interaction is worth knowing about.
* **unknown_flag** / **unknown_programme** (error): eligibility names something the build never supplies.
* **tiny_arm** (warning): an arm with under 5 % of the traffic needs a very long run to say anything.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from nudge_engine.experiments.model import Eligibility, ExperimentsConfig, ExperimentSpec

TINY_SHARE = 0.05


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    severity: Severity
    experiments: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity.value, "experiments": list(self.experiments),
                "detail": self.detail}


def _periods_overlap(a: ExperimentSpec, b: ExperimentSpec) -> bool:
    far = datetime.max.replace(tzinfo=a.starts_at.tzinfo)
    return a.starts_at < (b.ends_at or far) and b.starts_at < (a.ends_at or far)


def _populations_may_overlap(a: Eligibility, b: Eligibility) -> bool:
    """False only when the two eligibility rules provably exclude each other."""
    if a.programmes and b.programmes and not set(a.programmes) & set(b.programmes):
        return False
    required_a, required_b = set(a.flags_all), set(b.flags_all)
    forbidden_a, forbidden_b = set(a.flags_none), set(b.flags_none)
    if required_a & forbidden_b or required_b & forbidden_a:
        return False
    a_excluded = bool(a.flags_any) and set(a.flags_any) <= forbidden_b
    b_excluded = bool(b.flags_any) and set(b.flags_any) <= forbidden_a
    return not (a_excluded or b_excluded)


def overlaps(config: ExperimentsConfig) -> list[Problem]:
    out: list[Problem] = []
    specs = config.experiments
    for i, a in enumerate(specs):
        for b in specs[i + 1 :]:
            if not (_periods_overlap(a, b) and _populations_may_overlap(a.eligibility, b.eligibility)):
                continue
            if a.sets_lever and b.sets_lever:
                out.append(Problem(
                    "overlap", Severity.ERROR, (a.id, b.id),
                    f"both set a ranking policy or a no-nudge arm for the same patients at the same time; "
                    f"'{b.id}' would only get patients not already in '{a.id}'",
                ))
            else:
                out.append(Problem(
                    "overlap_shared", Severity.WARNING, (a.id, b.id),
                    "they run at the same time on the same patients, randomised independently",
                ))
    return out


def check_config(
    config: ExperimentsConfig, *, flags: Collection[str] | None = None, programmes: Collection[str] | None = None
) -> list[Problem]:
    """Every problem found (errors first)."""
    problems = overlaps(config)
    for spec in config.experiments:
        if flags is not None:
            for f in sorted(spec.eligibility.flags - set(flags)):
                problems.append(Problem("unknown_flag", Severity.ERROR, (spec.id,),
                                        f"eligibility names flag '{f}', which segments.yaml does not define"))
        if programmes is not None:
            for p in sorted(set(spec.eligibility.programmes) - set(programmes)):
                problems.append(Problem("unknown_programme", Severity.ERROR, (spec.id,),
                                        f"eligibility names programme '{p}', which the catalog does not know"))
        for arm, share in spec.shares.items():
            if share < TINY_SHARE:
                problems.append(Problem("tiny_arm", Severity.WARNING, (spec.id,),
                                        f"arm '{arm}' gets {share:.1%} of the traffic"))
    return sorted(problems, key=lambda p: (p.severity is not Severity.ERROR, p.code, p.experiments))
