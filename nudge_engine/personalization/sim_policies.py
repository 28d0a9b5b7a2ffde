"""The engine's own policies, and the oracle, as simulator runners."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.bandit import BanditParams, LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.context import condition_pairs, context_matrix, context_names
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.simulator import NOW, World


class RankingRunner:
    """A :class:`RankingPolicy` that retrains its baseline and bandit after every batch, as the build would.

    ``exploration_floor`` None: the policy's default (:data:`ranking.BASELINE_FLOOR` / ``BANDIT_FLOOR``).
    The bandit learns over the context vector and the pairs of condition segments.
    """

    def __init__(
        self, kind: PolicyKind, world: World, *, exploration_floor: float | None = None,
        params: BanditParams | None = None,
    ) -> None:
        self.kind = kind
        self.exploration_floor = exploration_floor
        self.baseline = SegmentBaseline.empty(world.segments.ids, world.catalog.ids)
        self.bandit = (
            LinearThompson(context_names(world.segments.ids), world.catalog.ids, world.catalog.category_code,
                           params=params, interactions=condition_pairs(world.segments.spec))
            if kind is PolicyKind.BANDIT else None
        )

    @property
    def policy(self) -> RankingPolicy:
        return RankingPolicy(self.kind, self.baseline, self.bandit, exploration_floor=self.exploration_floor)

    def choose(
        self, world: World, rows: npt.NDArray[np.intp], rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        ranking = self.policy.rank(world.ranking_input(rows), rng=rng, k=1)
        return ranking.chosen[:, 0], ranking.propensity[:, 0]

    def learn(
        self, world: World, rows: npt.NDArray[np.intp], actions: npt.NDArray[np.intp], rewards: npt.NDArray[np.float64]
    ) -> None:
        self.baseline = self.baseline.fit(world.membership[rows], actions, rewards, now=NOW)
        if self.bandit is not None:
            x = context_matrix(self.bandit.feature_names, behaviour=world.behaviour[rows],
                               membership=world.membership[rows], segment_ids=world.segments.ids)
            self.bandit = self.bandit.update(x, actions, rewards, now=NOW)


class OracleRunner:
    """Knows the hidden probabilities: picks the best permitted nudge. The ceiling, not a policy."""

    def choose(
        self, world: World, rows: npt.NDArray[np.intp], rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        best = np.where(world.permitted[rows], world.true_prob[rows], -1.0).argmax(axis=1)
        return best, np.ones(len(rows))

    def learn(
        self, world: World, rows: npt.NDArray[np.intp], actions: npt.NDArray[np.intp], rewards: npt.NDArray[np.float64]
    ) -> None:
        return None
