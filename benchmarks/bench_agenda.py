"""Engagement-optimising vs agenda-driven ranking, same simulated stream: opens and healthy behaviours.

In the simulator's world (benchmarks/bench_simulator.py) every patient is in a programme
(t2d_lifestyle or hypertension, at a stage that follows from a random enrolment date) and has a
health behaviour that differs from their tendency to open messages (see
``nudge_engine/personalization/sim_outcomes.py``). Policies, all Thompson bandits with a 5 %
exploration floor, on the same arrivals and random numbers:

* engagement: learns from opens, no agenda;
* health reward: learns from the health-outcome reward (rewards.py), no agenda;
* agenda-driven: learns from the health-outcome reward, plus the agenda component with each
  programme's weights (what the build runs).

Targets: the agenda-driven policy ahead on healthy behaviours, the engagement policy ahead on opens.

    .venv/bin/python benchmarks/bench_agenda.py [--decisions 50000] [--patients 6000] [--seed 20250601]
"""

from __future__ import annotations

import argparse
import time

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.programmes import load_programmes
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.sim_outcomes import Objective, OutcomeRunner, make_outcome_world, run_outcomes
from nudge_engine.personalization.simulator import WorldSettings, make_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--patients", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=20250601)
    args = parser.parse_args()

    t0 = time.perf_counter()
    catalog = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml")
    spec = load_segment_spec(PACKAGE_ROOT / "data" / "segments.yaml")
    programmes = load_programmes(PACKAGE_ROOT / "data" / "programmes", catalog)
    world = make_world(catalog, spec, WorldSettings(n_patients=args.patients, seed=args.seed))
    ow = make_outcome_world(world, programmes, seed=args.seed)
    permitted = world.permitted
    print(f"world: {len(world)} patients in {', '.join(programmes)}; {permitted.sum(axis=1).mean():.1f} permitted "
          f"nudges per patient; mean p(open) {ow.p_open[permitted].mean():.3f}, "
          f"mean p(healthy behaviour) {ow.p_healthy[permitted].mean():.3f}")

    runners = {
        "engagement (opens)": OutcomeRunner(ow, Objective.OPENS, agenda=False),
        "health reward, no agenda": OutcomeRunner(ow, Objective.HEALTH, agenda=False),
        "agenda-driven": OutcomeRunner(ow, Objective.HEALTH, agenda=True),
    }
    logs = run_outcomes(ow, runners, n_decisions=args.decisions, seed=args.seed)

    print(f"\nper 100 decisions over {args.decisions:,} decisions (95 % intervals), same arrivals and random numbers")
    print(f"{'policy':28s} {'opens':>8s} {'interval':>17s} {'healthy':>9s} {'interval':>17s}")
    results = {}
    for name, log in logs.items():
        s = log.summary()
        results[name] = s
        o, h = s["opened"], s["healthy"]
        print(f"{name:28s} {o['per_100']:8.2f} [{o['low']:6.2f}, {o['high']:6.2f}] "
              f"{h['per_100']:9.2f} [{h['low']:6.2f}, {h['high']:6.2f}]")
    eng, agd = results["engagement (opens)"], results["agenda-driven"]
    checks = [
        ("agenda-driven ahead on healthy behaviours (intervals apart)",
         agd["healthy"]["low"] > eng["healthy"]["high"]),
        ("engagement ahead on opens (intervals apart)", eng["opened"]["low"] > agd["opened"]["high"]),
    ]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
