"""Off-policy estimates against the simulator's true value of the same policy, on the same logged rows.

Candidate policies are trained on one simulated stream; decisions are logged on another, by a
uniformly random policy (a randomised hold-out) and by the engine's bandit (production logging).
For each candidate the table shows IPS, SNIPS and DR with 95% bootstrap intervals, the truth (the
candidate's exact expected completion rate on the logged arrivals), the ratios, and the overlap
diagnostics. Target: estimates within 10% of the truth where the overlap is adequate; where it is
not, the overlap warning must say so.

    .venv/bin/python benchmarks/bench_ope.py [--decisions 50000] [--patients 6000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.evaluation import evaluate_in_simulator
from nudge_engine.personalization.ranking import PolicyKind
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.simulator import WorldSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--patients", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    catalog = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml")
    spec = load_segment_spec(PACKAGE_ROOT / "data" / "segments.yaml")
    t0 = time.perf_counter()
    verdicts: list[tuple[str, bool, bool]] = []
    for logging in (PolicyKind.RANDOM, PolicyKind.BANDIT):
        t = time.perf_counter()
        report = evaluate_in_simulator(
            catalog, spec, logging=logging, n_decisions=args.decisions,
            world_settings=WorldSettings(n_patients=args.patients, seed=args.seed), seed=args.seed,
        )
        print(f"\nlogged by: {logging} ({report.rows:,} decisions, {time.perf_counter() - t:.1f}s)")
        print(f"{'candidate':18s} {'truth':>7s}  {'IPS [95% CI]':>24s} {'SNIPS [95% CI]':>24s} {'DR [95% CI]':>24s}"
              f" {'IPS/t':>6s} {'SNIPS/t':>7s} {'DR/t':>6s} {'ESS':>7s} {'mean w':>6s}")
        for ev in report.evaluations:
            truth = ev.truth or float("nan")
            est = ev.estimates
            cells = " ".join(f"{e.value:.4f} [{e.low:.4f},{e.high:.4f}]" for e in est.values())
            ratios = " ".join(f"{est[k].value / truth:{w}.3f}" for k, w in (("ips", 6), ("snips", 7), ("dr", 6)))
            print(f"{ev.policy:18s} {truth:7.4f}  {cells} {ratios} {ev.overlap.ess:7.0f} {ev.overlap.mean_weight:6.2f}")
            within = all(abs(e.value / truth - 1) <= 0.10 for e in est.values())
            verdicts.append((f"{logging} logging, {ev.policy}", within, bool(ev.overlap.warnings)))
            for warning in ev.overlap.warnings:
                print(f"{'':18s} warning: {warning}")
    print()
    for label, within, warned in verdicts:
        status = "PASS" if within else ("WARNED" if warned else "MISS")
        print(f"{status:6s} {label}: {'within' if within else 'outside'} 10% of the truth"
              f"{' (overlap warning raised)' if warned else ''}")
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
