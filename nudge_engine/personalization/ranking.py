"""Rank the guardrail-permitted nudges of each patient and log the propensity of what was chosen.

* ``baseline``: greedy on the segment baseline (deterministic).
* ``bandit``: Thompson sampling on the linear bandit; nudges a rule marked for caution are ranked
  by their posterior mean only (never explored).
* ``random``: uniform over the permitted set (a benchmark and a logging policy).

An exploration floor ``ε`` replaces the top pick, with probability ε, by a uniform draw from the
permitted nudges without caution. Unless set, ε is 0.05 for the baseline (deterministic otherwise, it
needs the floor to learn at all) and 0.02 for the bandit, whose Thompson draws already explore where
the model is unsure; the floor keeps every explorable nudge's propensity at least ε/|explorable|.

The logged propensity of the top pick is its exact marginal chance under this procedure:
``(1-ε)·P_thompson(a) + ε·1[a explorable]/|explorable|``. For lower ranks the propensity is
the Thompson chance of winning among the nudges not ranked above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.context import context_matrix
from nudge_engine.personalization.propensity import win_probability
from nudge_engine.personalization.scoring import Component, ScoreWeights

_TIEBREAK = 1e-9  # later catalog positions lose exact ties, deterministically
BASELINE_FLOOR = 0.05
BANDIT_FLOOR = 0.02


class PolicyKind(StrEnum):
    RANDOM = "random"
    BASELINE = "baseline"
    BANDIT = "bandit"


KIND_WEIGHTS: Mapping[PolicyKind, ScoreWeights] = {
    PolicyKind.RANDOM: ScoreWeights({Component.PREDICTED: 0.0, Component.BASELINE: 0.0, Component.PRIORITY: 0.0}),
    PolicyKind.BASELINE: ScoreWeights({Component.PREDICTED: 0.0, Component.BASELINE: 1.0, Component.PRIORITY: 0.001,
                                       Component.COLLABORATIVE: 0.5}),
    PolicyKind.BANDIT: ScoreWeights({Component.PREDICTED: 1.0, Component.BASELINE: 0.0, Component.PRIORITY: 0.001,
                                     Component.COLLABORATIVE: 0.5}),
}


@dataclass(frozen=True, slots=True)
class RankingInput:
    """What the policy sees of a batch: context inputs, the permitted set and the caution marks."""

    behaviour: npt.NDArray[np.float64] | None  # (P, behaviour features)
    membership: npt.NDArray[np.bool_]  # (P, segments)
    segment_ids: tuple[str, ...]
    nudge_ids: tuple[str, ...]
    nudge_category: npt.NDArray[np.int8]
    priority: npt.NDArray[np.float64]  # (N,) catalog priority 0..10
    permitted: npt.NDArray[np.bool_]  # (P, N) guardrails allow (deliver or deliver with caution)
    caution: npt.NDArray[np.bool_]  # (P, N) a rule attached a caution
    # Further deterministic components computed by the caller (agenda priority, freshness, ...), (P, N) each.
    extra: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    # Per-patient weights, (P,) each, that replace the policy's weight of that component (per programme,
    # per request: see agenda.patient_weights). Components not named here keep the policy's weight.
    weights: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    # (N, N) pairs too similar to be queued together (similarity.near_duplicates): below a pick, its
    # near-duplicates are skipped, so no two near-duplicates reach the same patient back to back.
    too_similar: npt.NDArray[np.bool_] | None = None

    def weight(self, name: str, default: float) -> npt.NDArray[np.float64]:
        """(P, 1) weight of component ``name`` for every patient."""
        w = self.weights.get(name)
        if w is None:
            return np.full((len(self.permitted), 1), default)
        return np.asarray(w, dtype=np.float64).reshape(-1, 1)


@dataclass(frozen=True, slots=True)
class Ranking:
    chosen: npt.NDArray[np.intp]  # (P, k) catalog positions, -1 when fewer were permitted
    score: npt.NDArray[np.float64]  # (P, k) the (drawn) total score
    propensity: npt.NDArray[np.float64]  # (P, k)
    explored: npt.NDArray[np.bool_]  # (P,) the top pick came from the exploration floor
    components: dict[str, npt.NDArray[np.float64]]  # name -> (P, k)
    mean_score: npt.NDArray[np.float64]  # (P, N) deterministic score (posterior means) of every pair
    parts: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)  # name -> (P, N) (means)
    weights: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)  # name -> (P,) weight applied


@dataclass(frozen=True, slots=True)
class Scores:
    mean: npt.NDArray[np.float64]  # (P, N) total score with posterior means
    std: npt.NDArray[np.float64]  # (P, N) standard deviation of the total score's draw
    parts: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    predicted_std: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True, slots=True)
class RankingPolicy:
    kind: PolicyKind
    baseline: SegmentBaseline
    bandit: LinearThompson | None = None
    weights: ScoreWeights | None = None
    exploration_floor: float | None = None  # None: BANDIT_FLOOR for the bandit, BASELINE_FLOOR otherwise
    greedy: bool = False

    @property
    def floor(self) -> float:
        """The exploration floor ε in force."""
        if self.exploration_floor is not None:
            return self.exploration_floor
        return BANDIT_FLOOR if self.kind is PolicyKind.BANDIT else BASELINE_FLOOR

    @property
    def score_weights(self) -> ScoreWeights:
        return self.weights or KIND_WEIGHTS[self.kind]

    @property
    def version(self) -> str:
        model = self.bandit.version if self.kind is PolicyKind.BANDIT and self.bandit else self.baseline.version
        return f"{self.kind}:{model}"

    def with_weights(self, overrides: Mapping[str, float]) -> RankingPolicy:
        return replace(self, weights=self.score_weights.with_overrides(overrides))

    # ------------------------------------------------------------------ scores
    def scores(self, inp: RankingInput) -> Scores:
        w = self.score_weights
        n_p, n_n = inp.permitted.shape
        parts: dict[str, npt.NDArray[np.float64]] = {}
        mean = np.zeros((n_p, n_n)) - _TIEBREAK * np.arange(n_n)[None, :] / max(n_n, 1)
        std = np.zeros((n_p, n_n))
        pred_std = None
        if self.kind is PolicyKind.RANDOM:
            return Scores(mean, std, parts)
        base_map = _positions(self.baseline.nudge_ids, inp.nudge_ids)
        member = inp.membership.astype(np.float64) @ self.baseline.align(inp.segment_ids).astype(np.float64) > 0
        parts[Component.BASELINE] = self.baseline.rates(member, base_map)
        parts[Component.PRIORITY] = np.broadcast_to(inp.priority[None, :] / 10.0, (n_p, n_n))
        w_pred = inp.weight(Component.PREDICTED, w[Component.PREDICTED])
        if self.bandit is not None and bool((w_pred != 0.0).any()):
            model = self.bandit
            arm_map = _positions(model.arm_ids, inp.nudge_ids)
            if (arm_map < 0).any():
                model = model.reindexed(inp.nudge_ids, inp.nudge_category)
                arm_map = np.arange(n_n)
            x = context_matrix(
                model.feature_names, behaviour=inp.behaviour, membership=inp.membership, segment_ids=inp.segment_ids
            )
            pm, ps = model.predict(x, arm_map)
            parts[Component.PREDICTED] = pm
            pred_std = np.where(inp.caution | self.greedy, 0.0, ps)
            std = np.abs(w_pred) * pred_std
        for name, value in inp.extra.items():
            if name in parts:
                raise InvalidInput(f"RankingInput: field 'extra.{name}': clashes with a built-in component")
            parts[name] = np.asarray(value, dtype=np.float64)
        for name, value in parts.items():
            mean = mean + inp.weight(name, w[name]) * value
        return Scores(mean, std, parts, pred_std)

    # ------------------------------------------------------------------ ranking
    def rank(
        self, inp: RankingInput, *, rng: np.random.Generator, k: int = 3, propensity_ranks: int = 1
    ) -> Ranking:
        """Top ``k`` per patient. Propensities are computed for the first ``propensity_ranks`` ranks (NaN below)."""
        n_p, n_n = inp.permitted.shape
        k = min(k, n_n)
        sc = self.scores(inp)
        permitted = inp.permitted
        explorable = permitted & ~inp.caution
        n_explorable = explorable.sum(axis=1)
        if self.kind is PolicyKind.RANDOM:
            draw = np.where(permitted, rng.random((n_p, n_n)), -np.inf)
            explore = np.zeros(n_p, dtype=bool)
        else:
            z = rng.standard_normal((n_p, n_n))
            draw = np.where(permitted, sc.mean + sc.std * z, -np.inf)
            explore = (rng.random(n_p) < self.floor) & (n_explorable > 0)
            if explore.any():
                keys = np.where(explorable[explore], rng.random((int(explore.sum()), n_n)), -1.0)
                pick = keys.argmax(axis=1)
                draw[np.flatnonzero(explore), pick] = np.inf
        rows = np.arange(n_p)[:, None]
        if inp.too_similar is not None and k > 1:
            order, ok = _diverse_order(draw, permitted, inp.too_similar, k)
        else:
            top = np.argpartition(-draw, k - 1, axis=1)[:, :k] if k < n_n else np.tile(np.arange(n_n), (n_p, 1))
            order = np.take_along_axis(top, np.argsort(-draw[rows, top], axis=1, kind="stable"), axis=1)
            ok = (np.isfinite(draw[rows, order]) | (draw[rows, order] == np.inf)) & permitted[rows, order]
        chosen = np.where(ok, order, -1)

        propensity = np.full((n_p, k), np.nan)
        remaining = permitted.copy()
        eps = np.where(n_explorable > 0, self.floor, 0.0) if self.kind is not PolicyKind.RANDOM else 0.0
        for r in range(min(k, propensity_ranks)):
            c = chosen[:, r]
            if self.kind is PolicyKind.RANDOM:
                p = np.where(c >= 0, 1.0 / np.maximum(remaining.sum(axis=1), 1), np.nan)
            else:
                p = win_probability(sc.mean, sc.std, remaining, c)
                if r == 0:
                    in_e = explorable[np.arange(n_p), np.maximum(c, 0)]
                    p = (1.0 - eps) * p + eps * in_e / np.maximum(n_explorable, 1)
            propensity[:, r] = np.where(c >= 0, p, np.nan)
            remaining[np.flatnonzero(c >= 0), c[c >= 0]] = False

        safe = np.maximum(chosen, 0)
        score = np.where(chosen >= 0, draw[rows, safe], np.nan)
        components = {name: np.where(chosen >= 0, v[rows, safe], np.nan) for name, v in sc.parts.items()}
        weights = {name: inp.weight(name, self.score_weights[name]) for name in sc.parts}
        if Component.PREDICTED in sc.parts and sc.predicted_std is not None:
            components[Component.PREDICTED] = _drawn_prediction(components, weights, score, safe, n_n)
        if explore.any():
            # Explored top picks carry their mean score; the +inf marker is not a score.
            score[explore, 0] = sc.mean[explore, safe[explore, 0]]
            if Component.PREDICTED in components:
                components[Component.PREDICTED][explore, 0] = sc.parts[Component.PREDICTED][explore, safe[explore, 0]]
        return Ranking(chosen, score, propensity, explore, components, sc.mean, sc.parts,
                       {name: w[:, 0] for name, w in weights.items()})

    # ------------------------------------------------------------------ evaluation
    def top_probability(self, inp: RankingInput, actions: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Exact chance that ``actions[i]`` is the top pick for row ``i`` (what the logged propensity means)."""
        n_p = len(actions)
        rows = np.arange(n_p)
        permitted = inp.permitted
        if self.kind is PolicyKind.RANDOM:
            return np.where(permitted[rows, actions], 1.0 / np.maximum(permitted.sum(axis=1), 1), 0.0)
        sc = self.scores(inp)
        explorable = permitted & ~inp.caution
        n_e = explorable.sum(axis=1)
        eps = np.where(n_e > 0, self.floor, 0.0)
        ts = win_probability(sc.mean, sc.std, permitted, actions)
        out: npt.NDArray[np.float64] = (1.0 - eps) * ts + eps * explorable[rows, actions] / np.maximum(n_e, 1)
        return out

    def action_probabilities(
        self, inp: RankingInput, *, rng: np.random.Generator, n_samples: int = 64
    ) -> npt.NDArray[np.float64]:
        """(rows × nudges) π(a|x): exact for deterministic policies, Monte Carlo over Thompson draws (``rng``)."""
        permitted = inp.permitted
        n_p, n_n = permitted.shape
        if self.kind is PolicyKind.RANDOM:
            uniform: npt.NDArray[np.float64] = permitted / np.maximum(permitted.sum(axis=1), 1)[:, None]
            return uniform
        sc = self.scores(inp)
        explorable = permitted & ~inp.caution
        n_e = explorable.sum(axis=1)
        eps = np.where(n_e > 0, self.floor, 0.0)
        rows = np.arange(n_p)
        top = np.zeros((n_p, n_n))
        if not sc.std.any():
            top[rows, np.where(permitted, sc.mean, -np.inf).argmax(axis=1)] = 1.0
        else:
            for _ in range(n_samples):
                draw = np.where(permitted, sc.mean + sc.std * rng.standard_normal((n_p, n_n)), -np.inf)
                top[rows, draw.argmax(axis=1)] += 1.0
            top /= n_samples
        floor_share = eps[:, None] * explorable / np.maximum(n_e, 1)[:, None]
        out: npt.NDArray[np.float64] = (1.0 - eps)[:, None] * top + floor_share
        return out

    def expected_value(
        self, inp: RankingInput, values: npt.NDArray[np.float64], *, rng: np.random.Generator, n_samples: int = 64
    ) -> npt.NDArray[np.float64]:
        """Per row, Σ_a π(a|x) · values[a] (:meth:`action_probabilities`)."""
        pi = self.action_probabilities(inp, rng=rng, n_samples=n_samples)
        out: npt.NDArray[np.float64] = (pi * values).sum(axis=1)
        return out


def _diverse_order(
    draw: npt.NDArray[np.float64], permitted: npt.NDArray[np.bool_], too_similar: npt.NDArray[np.bool_], k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Top ``k`` by ``draw``, greedily, skipping the near-duplicates of what was already picked."""
    n_p = len(draw)
    rows = np.arange(n_p)
    left = np.where(permitted, draw, -np.inf)
    order = np.zeros((n_p, k), dtype=np.intp)
    ok = np.zeros((n_p, k), dtype=bool)
    for r in range(k):
        pick = left.argmax(axis=1)
        ok[:, r] = left[rows, pick] > -np.inf
        order[:, r] = pick
        left[rows, pick] = -np.inf
        left[too_similar[pick]] = -np.inf
    return order, ok


def _drawn_prediction(
    components: dict[str, npt.NDArray[np.float64]],
    weights: dict[str, npt.NDArray[np.float64]],
    score: npt.NDArray[np.float64],
    safe: npt.NDArray[np.intp],
    n_n: int,
) -> npt.NDArray[np.float64]:
    """The recorded predicted value is the draw itself (mean + sd·z), consistent with the score."""
    w_pred = weights[Component.PREDICTED]
    others = sum(
        (weights[n] * v for n, v in components.items() if n != Component.PREDICTED), start=np.zeros_like(score)
    )
    tie = -_TIEBREAK * safe / max(n_n, 1)
    drawn = (score - others - tie) / np.where(w_pred != 0, w_pred, 1.0)
    out: npt.NDArray[np.float64] = np.where(w_pred != 0, drawn, components[Component.PREDICTED])
    return out


def _positions(model_ids: Sequence[str], catalog_ids: Sequence[str]) -> npt.NDArray[np.intp]:
    index = {a: i for i, a in enumerate(model_ids)}
    return np.array([index.get(n, -1) for n in catalog_ids], dtype=np.intp)
