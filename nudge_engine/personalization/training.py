"""Retraining: new model versions from logged (context, action, reward, propensity) decisions.

The scheduled retraining job loads the decisions served since the last model, with their outcome
(reward), as :class:`LoggedDecisions`, and calls :func:`retrain`. Both models keep sufficient
statistics, so retraining adds the new rows to the previous version's evidence.

:func:`retrain_on_outcomes` is the agenda-driven entry: the reward of every logged decision is its
health outcome (:mod:`rewards`: the programme's healthy behaviour done within its window), computed
from the events that followed, never an open or a tap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.bandit import BanditParams, LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.context import context_matrix, context_names
from nudge_engine.personalization.events import EventColumns
from nudge_engine.personalization.ope import LoggedDecisions
from nudge_engine.personalization.programmes import ProgrammeSet
from nudge_engine.personalization.rewards import DecisionOutcomes, ServedDecisions, outcome_rewards


@dataclass(frozen=True, slots=True)
class TrainedModels:
    baseline: SegmentBaseline
    bandit: LinearThompson
    rows: int


def retrain(
    logged: LoggedDecisions,
    *,
    now: datetime,
    baseline: SegmentBaseline | None = None,
    bandit: LinearThompson | None = None,
    params: BanditParams | None = None,
    interactions: Sequence[tuple[str, str]] = (),
    weight_by_propensity: bool = False,
    max_weight: float = 20.0,
) -> TrainedModels:
    """Add the logged rows to the previous models (or to empty ones) and return the new versions.

    ``params`` and ``interactions`` (for example :func:`context.condition_pairs`) shape a new bandit
    only; a previous bandit keeps its own, since its statistics are over its own features.

    Thompson sampling learns correctly from its own decisions without weights. ``weight_by_propensity``
    re-weights rows by 1/propensity (capped at ``max_weight``) for data logged by another policy.
    """
    logged.validate()
    base = baseline or SegmentBaseline.empty(logged.segment_ids, logged.nudge_ids)
    base_actions = _positions(base.nudge_ids, logged.nudge_ids)[logged.action]
    keep = base_actions >= 0
    member = logged.membership.astype(np.float64) @ base.align(logged.segment_ids).astype(np.float64) > 0
    new_base = base.fit(member[keep], base_actions[keep], logged.reward[keep], now=now)

    model = bandit or LinearThompson(
        context_names(logged.segment_ids), logged.nudge_ids, logged.nudge_category, params=params,
        interactions=interactions,
    )
    arm = _positions(model.arm_ids, logged.nudge_ids)
    if (arm < 0).any():
        model = model.reindexed(logged.nudge_ids, logged.nudge_category)
        arm = np.arange(len(logged.nudge_ids))
    x = context_matrix(model.feature_names, behaviour=logged.behaviour, membership=logged.membership,
                       segment_ids=logged.segment_ids)
    weights = np.minimum(1.0 / logged.propensity, max_weight) if weight_by_propensity else None
    new_bandit = model.update(x, arm[logged.action], logged.reward, weights=weights, now=now)
    return TrainedModels(new_base, new_bandit, len(logged))


def retrain_on_outcomes(
    logged: LoggedDecisions,
    *,
    served: ServedDecisions,
    events: EventColumns,
    programmes: ProgrammeSet,
    catalog: Catalog,
    now: datetime,
    baseline: SegmentBaseline | None = None,
    bandit: LinearThompson | None = None,
    params: BanditParams | None = None,
    interactions: Sequence[tuple[str, str]] = (),
) -> tuple[TrainedModels, DecisionOutcomes]:
    """:func:`retrain` with each row's reward replaced by its health outcome.

    ``served`` row ``i`` is logged row ``i`` (patient, nudge, serve time, programme); ``events`` are
    the patients' events after their serves (at least the longest reward window, 48 h in the samples).
    Returns the models and the outcomes (the rewards, and the opens for reporting only).
    """
    if len(served) != len(logged):
        raise InvalidInput(f"retrain_on_outcomes: field 'served': {len(served)} rows, logged has {len(logged)}")
    outcomes = outcome_rewards(served, events, programmes, catalog)
    trained = retrain(replace(logged, reward=outcomes.reward), now=now, baseline=baseline, bandit=bandit,
                      params=params, interactions=interactions)
    return trained, outcomes


def _positions(model_ids: tuple[str, ...], ids: tuple[str, ...]) -> npt.NDArray[np.intp]:
    index = {a: i for i, a in enumerate(model_ids)}
    return np.array([index.get(n, -1) for n in ids], dtype=np.intp)
