"""Simulator and off-policy evaluation: learning beats guessing, and estimates recover the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.entrypoints.cli import evaluate as evaluate_cli
from nudge_engine.personalization.evaluation import evaluate_logged, logged_from_simulation
from nudge_engine.personalization.ope import LoggedDecisions, estimate
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.sim_policies import OracleRunner, RankingRunner
from nudge_engine.personalization.simulator import World, WorldSettings, make_world, run
from tests.unit.personalization.burden_support import CATALOG, DATA

SPEC = load_segment_spec(DATA / "segments.yaml")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(CATALOG, SPEC, WorldSettings(n_patients=1500, seed=11))


def test_the_world_is_reproducible_from_its_seed(world: World) -> None:
    again = make_world(CATALOG, SPEC, WorldSettings(n_patients=1500, seed=11))
    assert np.array_equal(again.true_prob, world.true_prob) and np.array_equal(again.permitted, world.permitted)
    assert not world.permitted[:, CATALOG.index["heat-sauna-and-beer"]].any()


def test_the_bandit_learns_beyond_the_baseline_and_random_choice(world: World) -> None:
    runners = {
        "random": RankingRunner(PolicyKind.RANDOM, world),
        "baseline": RankingRunner(PolicyKind.BASELINE, world),
        "bandit": RankingRunner(PolicyKind.BANDIT, world),
        "oracle": OracleRunner(),
    }
    logs = run(world, runners, n_decisions=15_000, batch_size=1000, seed=2)
    value = {name: log.cat("expected")[-5000:].mean() for name, log in logs.items()}
    assert value["oracle"] >= value["bandit"] > value["baseline"] > value["random"]
    assert value["bandit"] > 1.5 * value["random"]
    # every logged action was permitted, with a propensity in (0, 1]
    bandit = logs["bandit"]
    rows, actions = bandit.cat("rows").astype(int), bandit.cat("actions").astype(int)
    assert world.permitted[rows, actions].all()
    assert ((bandit.cat("propensities") > 0) & (bandit.cat("propensities") <= 1)).all()


def test_estimates_recover_the_true_value_from_uniformly_logged_decisions(world: World) -> None:
    trainer = RankingRunner(PolicyKind.BANDIT, world)
    run(world, {"t": trainer}, n_decisions=8000, seed=3)
    # 50,000 uniform decisions give an effective sample of about 1,000 rows for a greedy target over ~48
    # permitted nudges: 10% is then about two standard errors (with 20,000 it was barely one).
    rows, logged = logged_from_simulation(world, run(world, {"l": RankingRunner(PolicyKind.RANDOM, world)},
                                                         n_decisions=50_000, seed=4)["l"])
    target = RankingPolicy(PolicyKind.BANDIT, trainer.baseline, trainer.bandit, greedy=True)
    truth = float(target.expected_value(logged.ranking_input(), world.true_prob[rows],
                                        rng=np.random.default_rng(0)).mean())
    estimates, overlap = estimate(logged, target, n_boot=200, n_refit=5)
    for name in ("ips", "snips", "dr"):
        e = estimates[name]
        assert e.value == pytest.approx(truth, rel=0.1)
        assert e.low <= e.value <= e.high
    assert overlap.mean_weight == pytest.approx(1.0, abs=0.1)
    # Enough overlap: the tool says to read DR.
    assert overlap.ess >= 500 and overlap.recommended == "dr"


def test_little_overlap_raises_a_warning(world: World) -> None:
    _, logged = logged_from_simulation(world, run(world, {"l": RankingRunner(PolicyKind.BASELINE, world,
                                                                                  exploration_floor=0.01)},
                                                         n_decisions=5000, seed=5)["l"])
    target = RankingPolicy(PolicyKind.RANDOM, RankingRunner(PolicyKind.BASELINE, world).baseline)
    estimates, overlap = estimate(logged, target, n_boot=50, n_refit=5)
    assert any("effective sample size" in w for w in overlap.warnings)
    assert overlap.ess < 500
    # Thin support, but a uniform target: WDM (derived for deterministic targets) is not the one to read.
    assert "wdm" in estimates and overlap.recommended == "dr" and "not (near-)deterministic" in overlap.reason
    # A deterministic target under the same thin support: read the model-based WDM, and say why.
    greedy = RankingPolicy(PolicyKind.BASELINE, RankingRunner(PolicyKind.BASELINE, world).baseline,
                           exploration_floor=0.0)
    estimates, overlap = estimate(logged, greedy, n_boot=50, n_refit=5)
    assert overlap.ess < 500 and overlap.recommended == "wdm" and "effective sample" in overlap.reason
    assert estimates["wdm"].low <= estimates["wdm"].high


def test_action_probabilities_agree_with_the_policys_expected_value(world: World) -> None:
    from nudge_engine.personalization.ope import action_probabilities

    trainer = RankingRunner(PolicyKind.BANDIT, world)
    run(world, {"t": trainer}, n_decisions=3000, seed=3)
    inp = world.ranking_input(np.arange(300))
    values = np.random.default_rng(0).random(inp.permitted.shape)
    for policy in (RankingPolicy(PolicyKind.BANDIT, trainer.baseline, trainer.bandit, greedy=True),
                   RankingPolicy(PolicyKind.BANDIT, trainer.baseline, trainer.bandit),
                   RankingPolicy(PolicyKind.BASELINE, trainer.baseline),
                   RankingPolicy(PolicyKind.RANDOM, trainer.baseline)):
        pi = action_probabilities(policy, inp, rng=np.random.default_rng(5), n_samples=16)
        assert pi is not None
        assert np.allclose(pi.sum(axis=1), 1.0) and not pi[~inp.permitted].any()
        expected = policy.expected_value(inp, values, rng=np.random.default_rng(5), n_samples=16)
        assert np.allclose((pi * values).sum(axis=1), expected)
    assert action_probabilities(object(), inp, rng=np.random.default_rng(0)) is None  # type: ignore[arg-type]


def test_the_weighted_reward_model_follows_the_rows_it_weights() -> None:
    from nudge_engine.personalization.context import BEHAVIOUR_FEATURES
    from nudge_engine.personalization.ope import mrdr_weights, reward_model

    assert np.array_equal(mrdr_weights(np.array([0.0, 0.5, 1.0, 3.0])), [0.0, 0.0, 0.0, 6.0])
    # One nudge, two kinds of rows: the weighted fit follows the heavily weighted rows' rewards.
    n = 4000
    rng = np.random.default_rng(1)
    heavy = np.arange(n) % 2 == 0
    logged = LoggedDecisions(
        np.zeros((n, len(BEHAVIOUR_FEATURES))), np.zeros((n, 1), dtype=bool), ("s",), ("a",),
        np.zeros(1, dtype=np.int8), np.zeros(1),
        np.ones((n, 1), dtype=bool), np.zeros((n, 1), dtype=bool), np.zeros(n, dtype=np.intp),
        np.where(heavy, rng.random(n) < 0.6, rng.random(n) < 0.2).astype(np.float64), np.ones(n),
    )
    plain = reward_model(logged).mean()
    weighted = reward_model(logged, weights=np.where(heavy, 100.0, 1.0)).mean()
    assert plain == pytest.approx(0.4, abs=0.05)
    assert weighted == pytest.approx(0.6 * 100 / 101 + 0.2 / 101, abs=0.05)


def test_logged_decisions_round_trip_and_are_checked(world: World, tmp_path: Path) -> None:
    _, logged = logged_from_simulation(world, run(world, {"l": RankingRunner(PolicyKind.RANDOM, world)},
                                                  n_decisions=2000, seed=6)["l"])
    path = tmp_path / "logged.npz"
    logged.save(path)
    again = LoggedDecisions.load(path)
    assert np.array_equal(again.action, logged.action) and again.nudge_ids == logged.nudge_ids
    report = evaluate_logged(again, seed=1)
    assert {e.policy for e in report.evaluations} >= {"random", "segment baseline"}
    bad = LoggedDecisions(**{**{f: getattr(logged, f) for f in LoggedDecisions.__slots__},
                             "propensity": np.zeros(len(logged))})
    with pytest.raises(InvalidInput, match="field 'propensity'"):
        bad.validate()


def test_evaluate_command_needs_exactly_one_source() -> None:
    import typer

    root = typer.Typer()
    root.add_typer(evaluate_cli.app, name="evaluate")
    root.command("noop")(lambda: None)
    result = CliRunner().invoke(root, ["evaluate"])
    assert result.exit_code == 2
    assert "give exactly one" in result.stderr


def test_evaluate_simulate_prints_estimates_beside_the_truth() -> None:
    import json

    import typer

    root = typer.Typer()
    root.add_typer(evaluate_cli.app, name="evaluate")
    root.command("noop")(lambda: None)
    args = ["evaluate", "--simulate", "--decisions", "2000", "--patients", "400", "--logging", "random", "--json"]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["logging_policy"] == "random" and doc["rows"] == 2000
    policies = {p["policy"]: p for p in doc["policies"]}
    assert policies["random"]["estimates"]["ips"]["value"] == pytest.approx(policies["random"]["truth"], rel=0.15)


def test_retraining_from_logged_decisions_adds_to_the_previous_version(world: World) -> None:
    from datetime import UTC, datetime

    from nudge_engine.personalization.training import retrain

    _, logged = logged_from_simulation(world, run(world, {"l": RankingRunner(PolicyKind.RANDOM, world)},
                                                  n_decisions=4000, seed=8)["l"])
    first, second = logged.subset(np.arange(2000)), logged.subset(np.arange(2000, 4000))
    t1, t2 = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC)
    v1 = retrain(first, now=t1)
    v2 = retrain(second, now=t2, baseline=v1.baseline, bandit=v1.bandit)
    at_once = retrain(logged, now=t2)
    assert np.allclose(v2.bandit.mean, at_once.bandit.mean) and v2.bandit.version != v1.bandit.version
    assert v2.bandit.counts.sum() == 4000 and v2.baseline.nudge_delivered.sum() == 4000
    weighted = retrain(logged, now=t2, weight_by_propensity=True)
    assert weighted.bandit.version != at_once.bandit.version



def test_a_more_exploratory_logging_bandit_leaves_more_support_and_earns_less() -> None:
    from nudge_engine.personalization.bandit import BanditParams
    from nudge_engine.personalization.evaluation import evaluate_in_simulator

    def run_with(exploration: float) -> tuple[float, float]:
        report = evaluate_in_simulator(CATALOG, SPEC, n_decisions=4000, seed=3,
                                       world_settings=WorldSettings(n_patients=400, seed=12),
                                       logging_params=BanditParams(exploration=exploration))
        uniform = next(e for e in report.evaluations if e.policy == "random")
        assert report.logged_reward is not None and report.as_json()["logged_reward"] == report.logged_reward
        return uniform.overlap.ess, report.logged_reward

    ess_narrow, earned_narrow = run_with(0.25)
    ess_wide, earned_wide = run_with(2.0)
    # Wider Thompson draws spread the logged propensities: a uniform target's weights even out.
    assert ess_wide > 2 * ess_narrow
    assert earned_wide < earned_narrow
