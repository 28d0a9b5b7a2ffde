"""Run the benchmarks one after another: ``python -m benchmarks [NAME ...] [--quick]`` (``make bench``).

Each script prints its figures and their ratios against the baseline it names, measured side by side
in the same run. ``--quick`` runs smaller sizes for a smoke test; the figures in BENCHMARKS.md come
from the default sizes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "cohort": ("bench_cohort.py", ["--patients", "20000"]),
    "rules": ("bench_rules.py", ["--patients", "4000", "--sample", "2000"]),
    "audit": ("bench_audit.py", ["--records", "100000"]),
    "build": ("bench_build.py", ["--sizes", "2000,10000"]),
    "simulator": ("bench_simulator.py", ["--decisions", "10000"]),
    "ope": ("bench_ope.py", ["--decisions", "10000"]),
    "api": ("bench_api.py", ["--duration", "5"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"which benchmarks (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed = []
    for name in args.names or list(BENCHMARKS):
        script, quick = BENCHMARKS[name]
        if not (HERE / script).exists():
            print(f"== {name}: {script} not present, skipped", flush=True)
            continue
        print(f"\n== {name} ({script}{' --quick' if args.quick else ''})", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *(quick if args.quick else [])])
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
