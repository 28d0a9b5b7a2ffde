"""Ranking: only permitted nudges, caution nudges never explored, an exploration floor, honest propensities."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.context import context_names
from nudge_engine.personalization.ranking import PolicyKind, RankingInput, RankingPolicy
from nudge_engine.personalization.scoring import Component

SEGMENTS = ("t2d", "htn")
NUDGES = ("walk", "plate", "salt", "breath", "greens")
CATEGORY = np.array([0, 1, 1, 2, 1], dtype=np.int8)
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _input(n: int, *, permitted: np.ndarray | None = None, caution: np.ndarray | None = None) -> RankingInput:
    rng = np.random.default_rng(0)
    return RankingInput(
        behaviour=None, membership=rng.random((n, 2)) < 0.5, segment_ids=SEGMENTS, nudge_ids=NUDGES,
        nudge_category=CATEGORY, priority=np.array([5.0, 3, 3, 2, 1]),
        permitted=np.ones((n, 5), bool) if permitted is None else permitted,
        caution=np.zeros((n, 5), bool) if caution is None else caution,
    )


def _bandit(seed: int = 1, n: int = 400) -> LinearThompson:
    """A lightly trained bandit: still uncertain, so Thompson draws vary."""
    rng = np.random.default_rng(seed)
    names = context_names(SEGMENTS)
    x = np.zeros((n, len(names)))
    x[:, 0] = 1.0
    x[:, -2:] = rng.random((n, 2)) < 0.5
    actions = rng.integers(0, 5, n)
    rewards = (rng.random(n) < np.array([0.3, 0.25, 0.2, 0.22, 0.12])[actions]).astype(float)
    return LinearThompson(names, NUDGES, CATEGORY).update(x, actions, rewards, now=T0)


def _baseline() -> SegmentBaseline:
    return SegmentBaseline.empty(SEGMENTS, NUDGES)


def test_only_permitted_nudges_are_ranked() -> None:
    permitted = np.ones((200, 5), bool)
    permitted[:, [1, 3]] = False  # review / block by the guardrails
    policy = RankingPolicy(PolicyKind.BANDIT, _baseline(), _bandit())
    ranking = policy.rank(_input(200, permitted=permitted), rng=np.random.default_rng(1), k=3)
    assert not np.isin(ranking.chosen, [1, 3]).any()
    assert (ranking.chosen >= 0).all()
    few = policy.rank(_input(5, permitted=np.eye(5, dtype=bool)), rng=np.random.default_rng(1), k=3)
    assert (few.chosen[:, 0] == np.arange(5)).all() and (few.chosen[:, 1:] == -1).all()


def test_nudges_marked_for_caution_are_never_explored() -> None:
    # 'greens' carries a caution: it competes with its posterior mean only (no Thompson noise) and the
    # exploration floor never picks it, so it wins only where its mean beats the others' draws.
    n = 4000
    caution = np.zeros((n, 5), bool)
    caution[:, 4] = True
    policy = RankingPolicy(PolicyKind.BANDIT, _baseline(), _bandit(), exploration_floor=0.3)
    inp = _input(n, caution=caution)
    scores = policy.scores(inp)
    assert scores.std[:, 4].max() == 0.0 and scores.std[:, :4].min() > 0.0
    ranking = policy.rank(inp, rng=np.random.default_rng(2), k=3)
    assert not (ranking.chosen[ranking.explored, 0] == 4).any()
    at = ranking.chosen == 4
    assert np.allclose(ranking.score[at], scores.mean[np.nonzero(at)[0], 4])
    uncautioned = policy.rank(_input(n), rng=np.random.default_rng(2), k=1)
    assert (uncautioned.chosen[:, 0] == 4).sum() > 5 * (ranking.chosen[:, 0] == 4).sum()


def test_every_explorable_nudge_keeps_the_exploration_floor() -> None:
    policy = RankingPolicy(PolicyKind.BASELINE, _baseline(), exploration_floor=0.1)
    inp = _input(50)
    for a in range(5):
        p = policy.top_probability(inp, np.full(50, a))
        assert (p >= 0.1 / 5 - 1e-12).all()


@pytest.mark.parametrize("kind", [PolicyKind.BANDIT, PolicyKind.BASELINE, PolicyKind.RANDOM])
def test_logged_propensity_is_the_frequency_of_the_top_pick(kind: PolicyKind) -> None:
    """Rank the same patient many times: how often each nudge comes first matches its propensity."""
    n = 20_000
    inp = _input(1)
    same = RankingInput(
        behaviour=None, membership=np.repeat(inp.membership, n, axis=0), segment_ids=SEGMENTS, nudge_ids=NUDGES,
        nudge_category=CATEGORY, priority=inp.priority, permitted=np.ones((n, 5), bool),
        caution=np.zeros((n, 5), bool),
    )
    policy = RankingPolicy(kind, _baseline(), _bandit(), exploration_floor=0.05)
    ranking = policy.rank(same, rng=np.random.default_rng(3), k=1)
    top = ranking.chosen[:, 0]
    for a in range(5):
        logged = ranking.propensity[top == a, 0]
        if len(logged):
            assert np.allclose(logged, logged[0])
            assert (top == a).mean() == pytest.approx(logged[0], abs=0.015)


def test_score_is_the_weighted_sum_of_its_components() -> None:
    policy = RankingPolicy(PolicyKind.BANDIT, _baseline(), _bandit(), exploration_floor=0.0)
    ranking = policy.rank(_input(100), rng=np.random.default_rng(4), k=2)
    w = policy.score_weights
    total = sum(w[name] * values for name, values in ranking.components.items())
    assert np.allclose(ranking.score, total, atol=1e-6)
    assert set(ranking.components) >= {Component.PREDICTED, Component.BASELINE, Component.PRIORITY}


def test_weights_can_be_overridden_but_not_invented() -> None:
    policy = RankingPolicy(PolicyKind.BANDIT, _baseline(), _bandit(), exploration_floor=0.0)
    by_priority = policy.with_weights({Component.PREDICTED: 0.0, Component.PRIORITY: 1.0})
    ranking = by_priority.rank(_input(20), rng=np.random.default_rng(5), k=1)
    assert (ranking.chosen[:, 0] == 0).all()  # 'walk' has the highest catalog priority
    with pytest.raises(InvalidInput, match="unknown score component"):
        policy.with_weights({"popularity": 1.0})


def test_the_policy_version_names_the_model() -> None:
    bandit = _bandit()
    assert RankingPolicy(PolicyKind.BANDIT, _baseline(), bandit).version == f"bandit:{bandit.version}"
    assert RankingPolicy(PolicyKind.BASELINE, _baseline()).version.startswith("baseline:base-")


def test_the_segment_baseline_smooths_towards_the_nudge_rate() -> None:
    membership = np.array([[True, False]] * 10 + [[False, True]] * 10)
    actions = np.array([1] * 20)
    rewards = np.array([1.0] * 10 + [0.0] * 10)
    base = _baseline().fit(membership, actions, rewards, now=T0)
    rates = base.rates(np.array([[True, False], [False, True], [False, False]]))
    assert rates[0, 1] > rates[2, 1] > rates[1, 1]  # t2d patients completed it, htn patients did not
    assert rates[1, 1] > 0.0 and rates[0, 1] < 1.0
    assert SegmentBaseline.from_bytes(base.to_bytes()).version == base.version


def _paired_bandit() -> LinearThompson:
    """Like :func:`_bandit`, with the t2d × htn interaction."""
    plain = _bandit()
    rng = np.random.default_rng(1)
    x = np.zeros((400, len(plain.feature_names)))
    x[:, 0] = 1.0
    x[:, -2:] = rng.random((400, 2)) < 0.5
    actions = rng.integers(0, 5, 400)
    rewards = (rng.random(400) < np.array([0.3, 0.25, 0.2, 0.22, 0.12])[actions]).astype(float)
    pair = (("segment:t2d", "segment:htn"),)
    return LinearThompson(plain.feature_names, NUDGES, CATEGORY, interactions=pair).update(x, actions, rewards, now=T0)


def test_the_bandit_keeps_a_smaller_exploration_floor_than_the_baseline_but_never_zero() -> None:
    bandit, baseline = RankingPolicy(PolicyKind.BANDIT, _baseline(), _bandit()), RankingPolicy(
        PolicyKind.BASELINE, _baseline())
    assert 0.0 < bandit.floor < baseline.floor == 0.05
    caution = np.zeros((50, 5), bool)
    caution[:, 4] = True
    inp = _input(50, caution=caution)
    for a in range(4):  # every explorable nudge keeps at least ε / |explorable|
        assert (bandit.top_probability(inp, np.full(50, a)) >= bandit.floor / 4 - 1e-12).all()


def test_the_interaction_bandit_logs_the_propensity_over_the_permitted_set_and_never_explores_cautions() -> None:
    n = 20_000
    inp = _input(1)
    permitted = np.ones((n, 5), bool)
    permitted[:, 1] = False  # removed by the guardrails
    caution = np.zeros((n, 5), bool)
    caution[:, 4] = True
    same = RankingInput(
        behaviour=None, membership=np.ones((n, 2), bool), segment_ids=SEGMENTS, nudge_ids=NUDGES,
        nudge_category=CATEGORY, priority=inp.priority, permitted=permitted, caution=caution,
    )
    policy = RankingPolicy(PolicyKind.BANDIT, _baseline(), _paired_bandit(), exploration_floor=0.2)
    assert policy.scores(same).std[:, 4].max() == 0.0
    ranking = policy.rank(same, rng=np.random.default_rng(6), k=1)
    top = ranking.chosen[:, 0]
    assert not (top == 1).any() and not (top[ranking.explored] == 4).any()
    total = 0.0
    for a in (0, 2, 3, 4):
        p = policy.top_probability(_first(same), np.array([a]))[0]
        total += p
        assert (top == a).mean() == pytest.approx(p, abs=0.015)
        assert np.allclose(ranking.propensity[top == a, 0], p)
    assert total == pytest.approx(1.0, abs=2e-3)  # the win probabilities are a 12-node quadrature


def _first(inp: RankingInput) -> RankingInput:
    return RankingInput(
        behaviour=None, membership=inp.membership[:1], segment_ids=inp.segment_ids, nudge_ids=inp.nudge_ids,
        nudge_category=inp.nudge_category, priority=inp.priority, permitted=inp.permitted[:1],
        caution=inp.caution[:1],
    )
