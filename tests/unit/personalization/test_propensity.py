"""The closed-form chance of winning a Thompson draw matches simulation, with and without caution arms."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_engine.personalization.propensity import win_probability


def _monte_carlo(
    mean: np.ndarray, std: np.ndarray, mask: np.ndarray, chosen: np.ndarray, k: int, seed: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(len(mean))
    for i in range(len(mean)):
        draws = mean[i] + std[i] * rng.standard_normal((k, mean.shape[1]))
        draws[:, ~mask[i]] = -np.inf
        out[i] = (draws.argmax(axis=1) == chosen[i]).mean()
    return out


def test_win_probability_matches_simulated_draws_including_deterministic_arms() -> None:
    rng = np.random.default_rng(3)
    rows, arms = 40, 15
    mean = rng.normal(0.25, 0.06, (rows, arms))
    std = rng.uniform(0.01, 0.06, (rows, arms))
    std[:, :4] = 0.0  # caution arms: ranked by their mean only
    mask = rng.random((rows, arms)) < 0.85
    mask[:, 5] = True
    chosen = np.full(rows, 5)
    exact = win_probability(mean, std, mask, chosen)
    simulated = _monte_carlo(mean, std, mask, chosen, 40_000, seed=4)
    assert np.abs(exact - simulated).max() < 0.012  # 40k draws: sd <= 0.0025


def test_probabilities_over_the_permitted_set_sum_to_one() -> None:
    rng = np.random.default_rng(5)
    mean = rng.normal(0.2, 0.05, (300, 12))
    std = rng.uniform(0.0, 0.05, (300, 12))  # includes nearly deterministic arms, the hardest case
    std[:, 0] = 0.0
    mask = rng.random((300, 12)) < 0.7
    mask[:, 0] = True
    total = sum(win_probability(mean, std, mask, np.full(300, j)) for j in range(12))
    assert np.abs(total - 1.0).mean() < 0.002
    assert np.abs(total - 1.0).max() < 0.03


def test_a_deterministic_arm_below_another_deterministic_arm_never_wins() -> None:
    mean = np.array([[0.5, 0.4, 0.1]])
    std = np.array([[0.0, 0.0, 0.2]])
    mask = np.ones((1, 3), dtype=bool)
    assert win_probability(mean, std, mask, np.array([1]))[0] == 0.0
    p_top = win_probability(mean, std, mask, np.array([0]))[0]
    assert abs(p_top - 0.9772) < 0.002  # the random arm beats 0.5 with P(Z > 2) = 0.0228


def test_an_arm_outside_the_set_has_probability_zero() -> None:
    mask = np.array([[True, False]])
    assert win_probability(np.array([[0.1, 0.9]]), np.array([[0.1, 0.1]]), mask, np.array([1]))[0] == 0.0


def test_an_arm_that_rarely_wins_gets_its_monte_carlo_chance() -> None:
    # Thompson draws over 50 near-tied nudges: the lowest means win well under 1% of the time. Their
    # propensities set the largest importance weights, so they must not be underestimated.
    rng = np.random.default_rng(8)
    mean = rng.normal(0.3, 0.05, (1, 50))
    std = 0.03 * rng.uniform(0.5, 1.5, (1, 50))
    mask = np.ones((1, 50), dtype=bool)
    draws = mean + std * np.random.default_rng(9).standard_normal((400_000, 50))
    wins = np.bincount(draws.argmax(axis=1), minlength=50) / len(draws)
    rare = np.flatnonzero((wins > 0.002) & (wins < 0.01))
    assert len(rare) >= 3
    for j in rare:
        assert win_probability(mean, std, mask, np.array([j]))[0] == pytest.approx(wins[j], rel=0.1)
