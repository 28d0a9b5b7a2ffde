"""Synthetic cohort generation speed: patients per second, streamed and held in memory.

    .venv/bin/python benchmarks/bench_cohort.py [--patients 100000] [--seed 42]

Target (issue 2): 100,000 patients well under a minute; aim < 15 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from nudge_engine.cohort import generate_cohort

AS_OF = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    n = args.patients

    list(generate_cohort(1_000, seed=args.seed, as_of=AS_OF))  # warm-up: imports, zone tables

    started = time.perf_counter()
    events = observations = 0
    for patient in generate_cohort(n, seed=args.seed, as_of=AS_OF):
        events += len(patient.events)
        observations += len(patient.record.context.observations)
    streamed = time.perf_counter() - started

    started = time.perf_counter()
    held = list(generate_cohort(n, seed=args.seed, as_of=AS_OF))
    in_memory = time.perf_counter() - started

    print(f"cohort: {n:,} patients, {events:,} events, {observations:,} observations (seed {args.seed})")
    print(f"streamed : {streamed:6.2f} s  {n / streamed:9,.0f} patients/s")
    print(f"in memory: {in_memory:6.2f} s  {n / in_memory:9,.0f} patients/s  ({len(held):,} held)")


if __name__ == "__main__":
    main()
