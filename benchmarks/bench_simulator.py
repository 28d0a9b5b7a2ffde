"""Simulator head to head: cumulative completion rate of each policy on the same 50,000-decision stream.

Policies: uniform random, the segment baseline, the engine's bandit, MABWiser's LinTS (same contexts,
same permitted sets, same batch updates), and the oracle that knows the hidden probabilities.
Targets: bandit above the baseline and MABWiser, and within 10% of the oracle.

Each engine policy runs with its production exploration floor (baseline 0.05, bandit 0.02) unless
``--floor`` sets one for both.

    .venv/bin/python benchmarks/bench_simulator.py [--decisions 50000] [--patients 6000] [--seeds 20250601,7,1]
                                                   [--floor EPSILON]

``--seeds`` runs one world and stream per seed and ends with each policy's share of the oracle per seed
and its minimum, since the target must hold on every stream, not on one (``--seed`` still works).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.context import condition_pairs, context_matrix, context_names
from nudge_engine.personalization.ranking import PolicyKind
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.sim_policies import OracleRunner, RankingRunner
from nudge_engine.personalization.simulator import Runner, World, WorldSettings, make_world, run


class MabwiserLinTS:
    """MABWiser's LinTS on the bandit's context vector; non-permitted arms are masked out of its draws."""

    def __init__(self, world: World, *, alpha: float, seed: int) -> None:
        from mabwiser.mab import MAB, LearningPolicy

        self.names = context_names(world.segments.ids)
        self.mab = MAB(arms=list(range(len(world.catalog))), learning_policy=LearningPolicy.LinTS(alpha=alpha),
                       seed=seed)
        self.fitted = False

    def _x(self, world: World, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return context_matrix(self.names, behaviour=world.behaviour[rows], membership=world.membership[rows],
                              segment_ids=world.segments.ids)

    def choose(self, world: World, rows: npt.NDArray[np.intp], rng: np.random.Generator) -> tuple[Any, Any]:
        permitted = world.permitted[rows]
        if not self.fitted:  # no model before the first batch: uniform over the permitted set
            return np.where(permitted, rng.random(permitted.shape), -1.0).argmax(axis=1), np.full(len(rows), np.nan)
        draws = self.mab.predict_expectations(self._x(world, rows))
        scores = np.array([[d[a] for a in range(permitted.shape[1])] for d in draws])
        return np.where(permitted, scores, -np.inf).argmax(axis=1), np.full(len(rows), np.nan)

    def learn(self, world: World, rows: Any, actions: Any, rewards: Any) -> None:
        x = self._x(world, rows)
        if self.fitted:
            self.mab.partial_fit(actions, rewards, x)
        else:
            self.mab.fit(actions, rewards, x)
            self.fitted = True


def linear_ceiling(world: World, *, interactions: bool = False) -> float:
    """Share of the oracle a per-nudge linear policy reaches when fitted to the true probabilities themselves."""
    x = context_matrix(context_names(world.segments.ids), behaviour=world.behaviour, membership=world.membership,
                       segment_ids=world.segments.ids)
    if interactions:
        x = LinearThompson(context_names(world.segments.ids), world.catalog.ids, world.catalog.category_code,
                           interactions=condition_pairs(world.segments.spec)).expand(x)
    coef, *_ = np.linalg.lstsq(x, world.true_prob, rcond=None)
    pool = world.permitted.any(axis=1)
    pick = np.where(world.permitted, x @ coef, -np.inf).argmax(axis=1)
    best = np.where(world.permitted, world.true_prob, -1.0).max(axis=1)
    return float(world.true_prob[np.arange(len(x)), pick][pool].mean() / best[pool].mean())


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, float]:
    """One world and stream: the table and checks of every policy; returns each policy's share of the oracle."""
    catalog = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml")
    spec = load_segment_spec(PACKAGE_ROOT / "data" / "segments.yaml")
    t0 = time.perf_counter()
    world = make_world(catalog, spec, WorldSettings(n_patients=args.patients, seed=seed))
    print(f"\n=== seed {seed}")
    print(f"world: {len(world)} patients, {len(catalog)} nudges, {world.permitted.sum(axis=1).mean():.1f} permitted "
          f"per patient, mean completion probability {world.true_prob[world.permitted].mean():.3f} "
          f"({time.perf_counter() - t0:.1f}s)")

    runners: dict[str, Runner] = {
        "random": RankingRunner(PolicyKind.RANDOM, world),
        "segment baseline": RankingRunner(PolicyKind.BASELINE, world, exploration_floor=args.floor),
        "bandit (engine)": RankingRunner(PolicyKind.BANDIT, world, exploration_floor=args.floor),
    }
    try:
        runners["MABWiser LinTS a=1 (default)"] = MabwiserLinTS(world, alpha=1.0, seed=seed)
        runners["MABWiser LinTS a=0.25"] = MabwiserLinTS(world, alpha=0.25, seed=seed)
    except ImportError:
        print("mabwiser is not installed (pip install mabwiser): its rows are skipped")
    runners["oracle"] = OracleRunner()

    results: dict[str, tuple[float, float, float]] = {}
    for name, runner in runners.items():
        t = time.perf_counter()
        log = run(world, {name: runner}, n_decisions=args.decisions, batch_size=1000, seed=seed)[name]
        rewards, expected = log.cat("rewards"), log.cat("expected")
        results[name] = (float(rewards.mean()), float(expected[-10_000:].mean()), time.perf_counter() - t)

    oracle = results["oracle"][0]
    baseline = results["segment baseline"][0]
    print(f"\ncumulative completion rate after {args.decisions:,} decisions (same arrivals and reward noise)")
    print(f"{'policy':32s} {'completion':>10s} {'last 10k':>9s} {'/oracle':>8s} {'/baseline':>10s} {'time':>7s}")
    for name, (cum, last, secs) in results.items():
        print(f"{name:32s} {cum:10.4f} {last:9.4f} {cum / oracle:8.3f} {cum / baseline:10.3f} {secs:6.1f}s")
    floors = {n: r.policy.floor for n, r in runners.items() if isinstance(r, RankingRunner) and n != "random"}
    print("\nexploration floors: " + ", ".join(f"{n} {f:g}" for n, f in floors.items()))
    print("best per-nudge linear policy fitted to the hidden probabilities: "
          f"{linear_ceiling(world):.3f} of the oracle on the context vector, "
          f"{linear_ceiling(world, interactions=True):.3f} with the bandit's condition pairs")
    bandit = results["bandit (engine)"][0]
    checks = [("bandit above segment baseline", bandit > baseline),
              ("bandit within 10% of the oracle", bandit >= 0.9 * oracle)]
    checks += [(f"bandit above {n}", bandit > r[0]) for n, r in results.items() if n.startswith("MABWiser")]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    return {name: cum / oracle for name, (cum, _, _) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--patients", type=int, default=6000)
    parser.add_argument("--seeds", "--seed", dest="seeds", default="20250601",
                        help="comma-separated world and stream seeds (one run per seed)")
    parser.add_argument("--floor", type=float, default=None,
                        help="exploration floor of the engine's policies (default: each policy's own)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    shares = {seed: run_seed(args, seed) for seed in seeds}
    if len(seeds) > 1:
        names = list(shares[seeds[0]])
        print("\nshare of the oracle per seed")
        print(f"{'policy':32s} " + " ".join(f"{s:>9d}" for s in seeds) + f" {'min':>7s}")
        for name in names:
            row = [shares[s][name] for s in seeds]
            print(f"{name:32s} " + " ".join(f"{v:9.3f}" for v in row) + f" {min(row):7.3f}")
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
