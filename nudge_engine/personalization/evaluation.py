"""Offline evaluation runs: estimates against the simulator's truth, or on decisions logged by the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.bandit import BanditParams, LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.context import context_matrix, context_names
from nudge_engine.personalization.ope import Estimate, LoggedDecisions, Overlap, estimate
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.segment_spec import SegmentSpec
from nudge_engine.personalization.sim_policies import RankingRunner
from nudge_engine.personalization.simulator import Log, World, WorldSettings, make_world, run


@dataclass(frozen=True, slots=True)
class PolicyEvaluation:
    policy: str
    estimates: dict[str, Estimate]
    overlap: Overlap
    truth: float | None = None  # known only in the simulator

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "policy": self.policy,
            "estimates": {k: {"value": e.value, "low": e.low, "high": e.high} for k, e in self.estimates.items()},
            "overlap": {"n": self.overlap.n, "ess": self.overlap.ess, "min_propensity": self.overlap.min_propensity,
                        "max_weight": self.overlap.max_weight, "mean_weight": self.overlap.mean_weight},
            "warnings": list(self.overlap.warnings),
            "recommended": {"estimator": self.overlap.recommended, "reason": self.overlap.reason},
        }
        if self.truth is not None:
            doc["truth"] = self.truth
            doc["ratio_to_truth"] = {k: e.value / self.truth for k, e in self.estimates.items()}
        return doc


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    logging_policy: str
    rows: int
    evaluations: list[PolicyEvaluation] = field(default_factory=list)
    logged_reward: float | None = None  # mean reward of the logged rows: what the logging policy earned

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"logging_policy": self.logging_policy, "rows": self.rows,
                               "policies": [e.as_json() for e in self.evaluations]}
        if self.logged_reward is not None:
            doc["logged_reward"] = self.logged_reward
        return doc


def logged_from_simulation(world: World, log: Log) -> tuple[npt.NDArray[np.intp], LoggedDecisions]:
    rows = log.cat("rows").astype(np.intp)
    return rows, LoggedDecisions(
        world.behaviour[rows], world.membership[rows], world.segments.ids, world.catalog.ids,
        world.catalog.category_code, world.catalog.priority, world.permitted[rows], world.caution[rows],
        log.cat("actions").astype(np.intp), log.cat("rewards"), log.cat("propensities"),
    )


def candidate_policies(baseline: SegmentBaseline, bandit: LinearThompson | None) -> dict[str, RankingPolicy]:
    policies = {
        "random": RankingPolicy(PolicyKind.RANDOM, baseline),
        "segment baseline": RankingPolicy(PolicyKind.BASELINE, baseline),
    }
    if bandit is not None:
        policies["bandit (greedy)"] = RankingPolicy(PolicyKind.BANDIT, baseline, bandit, greedy=True)
        policies["bandit (Thompson)"] = RankingPolicy(PolicyKind.BANDIT, baseline, bandit)
    return policies


def evaluate_in_simulator(
    catalog: Catalog,
    spec: SegmentSpec,
    *,
    logging: PolicyKind = PolicyKind.BANDIT,
    n_decisions: int = 50_000,
    world_settings: WorldSettings | None = None,
    logging_params: BanditParams | None = None,
    seed: int = 1,
) -> EvaluationReport:
    """Train candidate policies on one simulated stream, log another with ``logging``, estimate on it.

    The truth is each candidate's exact expected completion rate on the same logged arrivals.
    ``logging_params`` sets the logging bandit's parameters (its Thompson ``exploration``, say), so the
    support a logging policy leaves for off-policy estimates can be weighed against what it earns.
    """
    world = make_world(catalog, spec, world_settings)
    trainer = RankingRunner(PolicyKind.BANDIT, world)
    run(world, {"train": trainer}, n_decisions=n_decisions // 2, seed=seed)
    logger = RankingRunner(logging, world, params=logging_params)
    log = run(world, {"log": logger}, n_decisions=n_decisions, seed=seed + 1)["log"]
    rows, logged = logged_from_simulation(world, log)
    logged.validate()
    report = EvaluationReport(str(logging), len(logged), logged_reward=float(logged.reward.mean()))
    for name, policy in candidate_policies(trainer.baseline, trainer.bandit).items():
        truth = float(policy.expected_value(logged.ranking_input(), world.true_prob[rows],
                                            rng=np.random.default_rng(seed), n_samples=64).mean())
        estimates, ov = estimate(logged, policy, seed=seed)
        report.evaluations.append(PolicyEvaluation(name, estimates, ov, truth))
    return report


def evaluate_logged(
    logged: LoggedDecisions, *, bandit: LinearThompson | None = None, seed: int = 0
) -> EvaluationReport:
    """Estimate candidate policies on decisions logged by the engine.

    Candidates are trained on the first half of the rows (by order) and evaluated on the second, so a
    policy is never scored on the data it learned from. A given ``bandit`` is evaluated as is.
    """
    logged.validate()
    half = len(logged) // 2
    train, test = logged.subset(np.arange(half)), logged.subset(np.arange(half, len(logged)))
    baseline = SegmentBaseline.empty(logged.segment_ids, logged.nudge_ids).fit(train.membership, train.action,
                                                                               train.reward)
    if bandit is None and half > 0:
        names = context_names(logged.segment_ids)
        x = context_matrix(names, behaviour=train.behaviour, membership=train.membership,
                           segment_ids=train.segment_ids)
        bandit = LinearThompson(names, logged.nudge_ids, logged.nudge_category).update(x, train.action, train.reward)
    report = EvaluationReport("logged", len(test))
    for name, policy in candidate_policies(baseline, bandit).items():
        estimates, ov = estimate(test, policy, seed=seed)
        report.evaluations.append(PolicyEvaluation(name, estimates, ov))
    return report
