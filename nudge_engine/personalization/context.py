"""The patient context vector the bandit learns from: intercept, behaviour features, segment membership."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.features import BEHAVIOUR_FEATURES, PatientFeatures
from nudge_engine.personalization.segment_spec import SegmentSpec

INTERCEPT = "intercept"
SEGMENT_PREFIX = "segment:"


def context_names(segment_ids: Sequence[str]) -> tuple[str, ...]:
    return (INTERCEPT, *BEHAVIOUR_FEATURES, *(SEGMENT_PREFIX + s for s in segment_ids))


def context_matrix(
    names: Sequence[str],
    *,
    behaviour: npt.NDArray[np.float64] | None,
    membership: npt.NDArray[np.bool_],
    segment_ids: Sequence[str],
) -> npt.NDArray[np.float64]:
    """(patients × names). Names the inputs do not provide (a segment that no longer exists) are 0."""
    n = len(membership)
    seg_col = {s: j for j, s in enumerate(segment_ids)}
    beh_col = {s: j for j, s in enumerate(BEHAVIOUR_FEATURES)}
    out = np.zeros((n, len(names)))
    for k, name in enumerate(names):
        if name == INTERCEPT:
            out[:, k] = 1.0
        elif name.startswith(SEGMENT_PREFIX):
            j = seg_col.get(name.removeprefix(SEGMENT_PREFIX))
            if j is not None:
                out[:, k] = membership[:, j]
        elif behaviour is not None and name in beh_col:
            out[:, k] = behaviour[:, beh_col[name]]
    return out


def behaviour_of(features: PatientFeatures) -> npt.NDArray[np.float64]:
    return features.behaviour_matrix()


def condition_pairs(spec: SegmentSpec) -> tuple[tuple[str, str], ...]:
    """Pairs of condition segments (defined by clinical flags alone) as bandit interactions.

    Two conditions held together (diabetes with kidney disease, say) can change what helps more than
    either alone; engagement, activity and programme segments describe the moment, not the person,
    and stay main effects only.
    """
    names = [
        SEGMENT_PREFIX + s.id for s in spec.segments
        if s.when.flags and not (s.when.programme or s.when.engagement or s.when.activity)
    ]
    return tuple((a, b) for i, a in enumerate(names) for b in names[i + 1 :])
