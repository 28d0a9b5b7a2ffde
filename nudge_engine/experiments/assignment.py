"""Deterministic assignment: ``sha256(salt:surrogate id)`` → a uniform number in [0, 1) → an arm.

The same patient always lands in the same arm of an experiment (no state needed), arms of different
experiments are independent (each has its own salt), and nothing is derived from an identifier: the
surrogate id is random.

Rules the build relies on:

* a patient in the global holdout is in no experiment and gets no nudge, except safety-relevant ones;
* of the running experiments that set a lever (a ranking policy or a no-nudge arm), a patient enters
  only the first one (file order) whose eligibility he meets, so two experiments never pull the same
  lever for one patient (``experiments check`` reports such overlaps);
* safety-relevant nudges (medication adherence, clinician-approved ones) are never withheld.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.experiments.model import Eligibility, ExperimentsConfig
from nudge_engine.personalization.ranking import PolicyKind

SAFETY_CATEGORY = "medication"
SAFETY_TAG = "adherence"
_SCALE = float(2**64)


def bucket(patient_id: str, salt: str) -> float:
    """The patient's uniform number in [0, 1) for ``salt``."""
    digest = hashlib.sha256(f"{salt}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def buckets(patient_ids: Sequence[str], salt: str) -> npt.NDArray[np.float64]:
    return np.fromiter((bucket(p, salt) for p in patient_ids), dtype=np.float64, count=len(patient_ids))


def safety_relevant(category: str, tags: Sequence[str], *, clinician_approved: bool = False) -> bool:
    """Medication adherence nudges and nudges a clinician approved are never withheld by an experiment."""
    return clinician_approved or (str(category) == SAFETY_CATEGORY and SAFETY_TAG in tags)


def may_withhold(category: str, tags: Sequence[str], *, clinician_approved: bool = False) -> bool:
    return not safety_relevant(category, tags, clinician_approved=clinician_approved)


@dataclass(frozen=True, slots=True)
class ArmAssignment:
    """Per patient (in ``patient_ids`` order): the arm in each running experiment and the build's levers.

    ``arms[experiment_id][i]`` is ``''`` when patient ``i`` is not in that experiment. ``policy[i]`` is
    ``''`` (the build's default) or a :class:`PolicyKind` value. ``held_out[i]``: give no nudge except
    safety-relevant ones (global holdout or a holdout arm).
    """

    patient_ids: tuple[str, ...]
    arms: Mapping[str, npt.NDArray[np.str_]]
    policy: npt.NDArray[np.str_]
    held_out: npt.NDArray[np.bool_]
    global_holdout: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.patient_ids)

    @property
    def experiment_ids(self) -> tuple[str, ...]:
        return tuple(self.arms)

    def arms_of(self, i: int) -> dict[str, str]:
        """``{experiment id: arm}`` of the experiments patient ``i`` is in (what the decision records)."""
        return {e: str(a[i]) for e, a in self.arms.items() if a[i]}

    def policy_of(self, i: int) -> PolicyKind | None:
        return PolicyKind(str(self.policy[i])) if self.policy[i] else None

    def withheld(self, safe: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """(patients × nudges) mask of what the build must not make ready; ``safe`` marks safety-relevant nudges."""
        out: npt.NDArray[np.bool_] = self.held_out[:, None] & ~np.asarray(safe, dtype=bool)[None, :]
        return out


def safe_nudges(categories: Sequence[str], tags: Sequence[Sequence[str]]) -> npt.NDArray[np.bool_]:
    """Per catalog nudge: safety-relevant (never withheld)."""
    return np.array([safety_relevant(c, t) for c, t in zip(categories, tags, strict=True)], dtype=bool)


def eligible(
    rule: Eligibility, *, programmes: npt.NDArray[np.str_], flags: Mapping[str, npt.NDArray[np.bool_]]
) -> npt.NDArray[np.bool_]:
    n = len(programmes)
    none = np.zeros(n, dtype=bool)
    ok = np.ones(n, dtype=bool)
    if rule.programmes:
        ok &= np.isin(programmes, list(rule.programmes))
    for f in rule.flags_all:
        ok &= flags.get(f, none)
    if rule.flags_any:
        ok &= np.logical_or.reduce([flags.get(f, none) for f in rule.flags_any])
    for f in rule.flags_none:
        ok &= ~flags.get(f, none)
    return ok


def assign(
    config: ExperimentsConfig,
    patient_ids: Sequence[str],
    *,
    programmes: npt.NDArray[np.str_] | Sequence[str],
    flags: Mapping[str, npt.NDArray[np.bool_]],
    now: datetime,
) -> ArmAssignment:
    """Arms of every experiment running at ``now`` and the build's levers, for one batch of patients.

    ``programmes`` (``''`` for none) and ``flags`` are the batch's own (``PatientBatch.programme`` and
    ``PatientBatch.flags``): eligibility uses only what is known before ranking.
    """
    ids = tuple(patient_ids)
    n = len(ids)
    progs = np.asarray(programmes, dtype=np.str_)
    in_global = np.zeros(n, dtype=bool)
    if config.global_holdout is not None and config.global_holdout.fraction > 0:
        in_global = buckets(ids, config.global_holdout.salt) < config.global_holdout.fraction
    held_out = in_global.copy()
    policy = np.full(n, "", dtype="<U16")
    lever_taken = np.zeros(n, dtype=bool)
    arms: dict[str, npt.NDArray[np.str_]] = {}
    for spec in config.experiments:
        if not spec.running(now):
            continue
        enter = eligible(spec.eligibility, programmes=progs, flags=flags) & ~in_global
        if spec.sets_lever:
            enter &= ~lever_taken
            lever_taken |= enter
        shares = spec.shares
        edges = np.cumsum([shares[a] for a in spec.arm_ids])
        edges[-1] = 1.0
        pick = np.minimum(np.searchsorted(edges, buckets(ids, spec.salt), side="right"), len(edges) - 1)
        arm_ids = np.asarray(spec.arm_ids, dtype=np.str_)
        arms[spec.id] = np.where(enter, arm_ids[pick], "").astype(np.str_)
        for k, arm in enumerate(spec.arms):
            mine = enter & (pick == k)
            if arm.holdout:
                held_out |= mine
            if arm.policy is not None:
                policy[mine] = arm.policy.value
    return ArmAssignment(ids, arms, policy, held_out, in_global)
