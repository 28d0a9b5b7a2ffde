"""The linear Thompson bandit learns, is versioned, round-trips through bytes, and retrains by adding rows."""

from __future__ import annotations

import hashlib
from dataclasses import make_dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization import model_io
from nudge_engine.personalization.bandit import BanditParams, LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.ranking import PolicyKind, RankingInput, RankingPolicy

NAMES = ("intercept", "segment:t2d", "segment:htn")
ARMS = ("walk", "plate", "salt", "breath")
CATEGORY = np.array([0, 1, 1, 2])
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t2d patients complete 'plate' often; hypertensive ones 'salt'; everybody 'walk' sometimes."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.random(n) < 0.5, rng.random(n) < 0.5]).astype(float)
    a = rng.integers(0, len(ARMS), n)
    p = np.full(n, 0.15)
    p[(a == 1) & (x[:, 1] == 1)] = 0.6
    p[(a == 2) & (x[:, 2] == 1)] = 0.5
    return x, a, (rng.random(n) < p).astype(float)


def _model() -> LinearThompson:
    return LinearThompson(NAMES, ARMS, CATEGORY)


def test_the_bandit_learns_which_nudge_suits_which_segment() -> None:
    model = _model().update(*_data(6000, 1), now=T0)
    mean, std = model.predict(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))
    assert mean[0].argmax() == 1 and mean[1].argmax() == 2
    assert mean[0, 1] == pytest.approx(0.6, abs=0.06)
    assert (std < _model().predict(np.array([[1.0, 1.0, 0.0]]))[1]).all()


def test_retraining_by_adding_rows_equals_training_on_all_rows() -> None:
    x, a, r = _data(2000, 2)
    once = _model().update(x, a, r, now=T0)
    twice = _model().update(x[:700], a[:700], r[:700], now=T0).update(x[700:], a[700:], r[700:], now=T0)
    assert np.allclose(once.mean, twice.mean) and once.version == twice.version


def test_the_version_names_parameters_data_and_training_time() -> None:
    x, a, r = _data(500, 3)
    base = _model().update(x, a, r, now=T0)
    assert base.version.startswith("lints-") and base.version.endswith("20250601T000000Z")
    assert _model().update(x, a, r, now=T0).version == base.version
    assert _model().update(x[:-1], a[:-1], r[:-1], now=T0).version != base.version
    tuned = LinearThompson(NAMES, ARMS, CATEGORY, params=BanditParams(exploration=0.5)).update(x, a, r, now=T0)
    assert tuned.version != base.version


def test_a_model_round_trips_through_bytes_without_pickle() -> None:
    model = _model().update(*_data(800, 4), now=T0)
    blob = model.to_bytes()
    again = LinearThompson.from_bytes(blob)
    assert again.version == model.version
    x = np.array([[1.0, 1.0, 1.0]])
    assert np.allclose(again.predict(x)[0], model.predict(x)[0])
    _, arrays = model_io.load("linear_thompson", blob)
    assert all(arr.dtype != object for arr in arrays.values())
    with pytest.raises(InvalidInput, match="field 'kind'"):
        model_io.load("segment_baseline", blob)


def test_tampered_model_statistics_are_refused() -> None:
    model = _model().update(*_data(300, 5), now=T0)
    header, arrays = model_io.load("linear_thompson", model.to_bytes())
    arrays["counts"] = arrays["counts"] + 1
    header.pop("kind")
    with pytest.raises(InvalidInput, match="field 'version'"):
        LinearThompson.from_bytes(model_io.dump("linear_thompson", header, arrays))


def test_a_new_nudge_starts_from_its_category_model() -> None:
    model = _model().update(*_data(6000, 6), now=T0)
    grown = model.reindexed((*ARMS, "plate-2"), np.append(CATEGORY, 1))
    mean, _ = grown.predict(np.array([[1.0, 1.0, 0.0]]))
    # the new diet nudge inherits the diet category's pooled estimate for t2d patients, between its siblings
    assert min(mean[0, 1], mean[0, 2]) <= mean[0, 4] <= max(mean[0, 1], mean[0, 2])
    assert np.allclose(grown.mean[:4], model.mean)


PAIR = (("segment:t2d", "segment:htn"),)


def _pair_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'plate' helps patients with both diabetes and hypertension, and nobody with only one of them."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.random(n) < 0.5, rng.random(n) < 0.5]).astype(float)
    a = rng.integers(0, len(ARMS), n)
    p = np.where((a == 1) & (x[:, 1] == 1) & (x[:, 2] == 1), 0.7, 0.15)
    return x, a, (rng.random(n) < p).astype(float)


def test_an_interaction_learns_what_two_conditions_together_change() -> None:
    x, a, r = _pair_data(8000, 7)
    both, one = np.array([[1.0, 1.0, 1.0]]), np.array([[1.0, 1.0, 0.0]])
    paired = LinearThompson(NAMES, ARMS, CATEGORY, interactions=PAIR).update(x, a, r, now=T0)
    assert paired.model_names[-1] == "segment:t2d*segment:htn"
    assert paired.predict(both)[0][0, 1] == pytest.approx(0.7, abs=0.08)
    assert paired.predict(one)[0][0, 1] == pytest.approx(0.15, abs=0.06)
    plain = _model().update(x, a, r, now=T0)  # main effects only: cannot tell 'both' from 'one' apart enough
    assert abs(plain.predict(both)[0][0, 1] - 0.7) > 2 * abs(paired.predict(both)[0][0, 1] - 0.7)


def test_interactions_are_stored_with_the_model_and_name_only_context_features() -> None:
    model = LinearThompson(NAMES, ARMS, CATEGORY, interactions=PAIR).update(*_pair_data(500, 8), now=T0)
    again = LinearThompson.from_bytes(model.to_bytes())
    assert again.interactions == PAIR and again.version == model.version
    assert model.version != _model().update(*_pair_data(500, 8), now=T0).version
    with pytest.raises(InvalidInput, match="field 'interactions'"):
        LinearThompson(NAMES, ARMS, CATEGORY, interactions=(("segment:t2d", "segment:ckd"),))


def test_a_model_stored_before_interactions_existed_loads_with_its_version() -> None:
    # The version hash of a model without interactions and with unit scales is the one older releases
    # computed, from the repr of their four-field parameters.
    old_params = make_dataclass("BanditParams", ["arm_precision", "category_precision", "noise_var", "exploration"])
    params = BanditParams(arm_precision=100.0, category_precision=100.0, intercept_scale=1.0, interaction_scale=1.0)
    model = LinearThompson(NAMES, ARMS, CATEGORY, params=params).update(*_data(300, 9), now=T0)
    h = hashlib.sha256(repr((NAMES, ARMS, CATEGORY.tolist(), old_params(100.0, 100.0, None, 0.25))).encode())
    for arr in (model.xtx, model.xty, model.counts, model.reward_sum):
        h.update(np.ascontiguousarray(arr).tobytes())
    assert model.version == f"lints-{h.hexdigest()[:10]}-20250601T000000Z"
    header, arrays = model_io.load("linear_thompson", model.to_bytes())
    header.pop("kind"), header.pop("interactions")
    header["params"] = {k: header["params"][k] for k in ("arm_precision", "category_precision", "noise_var",
                                                          "exploration")}
    loaded = LinearThompson.from_bytes(model_io.dump("linear_thompson", header, arrays))
    assert loaded.version == model.version and loaded.params == params


def test_a_better_nudge_wins_on_a_seeded_stream() -> None:
    """Ranked and retrained batch after batch, the bandit ends up sending each segment its best nudge."""
    rng = np.random.default_rng(10)
    truth = np.array([[0.15, 0.6, 0.15, 0.2], [0.15, 0.15, 0.5, 0.2]])  # t2d: 'plate'; htn: 'salt'
    model = LinearThompson(NAMES, ARMS, CATEGORY, interactions=PAIR)
    base = SegmentBaseline.empty(("t2d", "htn"), ARMS)
    for _ in range(12):
        t2d = rng.random(500) < 0.5
        membership = np.column_stack([t2d, ~t2d])
        inp = RankingInput(behaviour=None, membership=membership, segment_ids=("t2d", "htn"), nudge_ids=ARMS,
                           nudge_category=CATEGORY.astype(np.int8), priority=np.zeros(4),
                           permitted=np.ones((500, 4), bool), caution=np.zeros((500, 4), bool))
        chosen = RankingPolicy(PolicyKind.BANDIT, base, model).rank(inp, rng=rng, k=1).chosen[:, 0]
        rewards = (rng.random(500) < truth[(~t2d).astype(int), chosen]).astype(float)
        x = np.column_stack([np.ones(500), membership]).astype(float)
        model = model.update(x, chosen, rewards, now=T0)
    assert (chosen[t2d] == 1).mean() > 0.9 and (chosen[~t2d] == 2).mean() > 0.9
