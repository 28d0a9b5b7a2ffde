"""Build-cycle throughput on SQLite: patients per second at several cohort sizes, and how the
per-patient cost grows with size (the baseline is the smallest size, measured in the same run).

    .venv/bin/python benchmarks/bench_build.py [--sizes 10000,100000,1000000] [--workers 2] [--shard-size 2000] [--cold]

Each size gets its own database under ``var/bench/`` (migrated, synthetic cohort of that size with
its 8-week app history imported once and reused by later runs; preparing is not timed). Sizes
above 100,000 are prepared as copies of the 100,000 cohort under new surrogate ids
(``benchmarks/clone_cohort.py``): importing a million patients takes over an hour here. The timed
part is one full cycle: loading each shard's context, preferences and events from SQLite into
columns, segments, candidates and burden, ranking, the batch guardrail evaluation, evidence for
flagged pairs, and writing decisions, the ready queue, review items and one audit record per
patient. ``--workers`` worker processes build the cycle together (``nudge-engine build --workers``);
the default is one per core. Targets (issue 4): 1M patients in under 3 minutes on 2 cores;
per-patient cost growing by less than 1.5x from 10k to 1M. The 1M database is larger than this
machine's memory, so it always starts mostly from disk; ``--cold`` starts every size from disk, so
the sizes are compared alike (otherwise a small size may run from memory or not, depending on what
ran before it).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from clone_cohort import clone  # beside this script
from sqlalchemy import update

from nudge_engine.adapters.migrations import upgrade
from nudge_engine.adapters.orm import BuildCycleRow
from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.logs import configure_logging
from nudge_engine.privacy.keys import ensure_dev_secrets
from nudge_engine.services.build.cycle import BuildOptions
from nudge_engine.services.build.parallel import build_with_workers
from nudge_engine.services.cohort_import import import_cohort
from nudge_engine.services.demo import nudge_mapper
from nudge_engine.services.importing import Importer

AS_OF = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def prepare(size: int, root: Path, *, clone_above: int = 100_000) -> Container:
    """The cached database of ``size`` patients (imported; above ``clone_above``, copies of that cohort)."""
    folder = root / f"build-{size}"
    ready_flag = folder / "prepared"
    settings = ensure_dev_secrets(Settings(database_url=f"sqlite:///{folder / 'nudge.db'}", var_dir=folder,
                                           log_level="WARNING"))  # the spawned workers log at this level too
    container = Container(settings, clock=lambda: AS_OF)
    upgrade(container.engine)  # a database cached by an older version gets the newer migrations
    with container.uow() as uow:  # a cycle left running by an interrupted benchmark would be resumed, not timed whole
        uow.session.execute(update(BuildCycleRow).where(BuildCycleRow.status == "running").values(status="abandoned"))
        uow.commit()
    if not ready_flag.exists() and size > clone_above and size % clone_above == 0:
        source = prepare(clone_above, root, clone_above=clone_above)
        source.dispose()
        started = time.perf_counter()
        print(f"  preparing {size:,} patients as {size // clone_above} copies of the {clone_above:,} cohort "
              "(benchmarks/clone_cohort.py)", flush=True)
        container.engine.dispose()
        clone(root / f"build-{clone_above}" / "nudge.db", folder / "nudge.db", size // clone_above)
        ready_flag.write_text(f"{size} (copies of {clone_above})\n")
        print(f"  prepared {size:,} patients in {time.perf_counter() - started:.0f} s (cached in {folder})",
              flush=True)
    if not ready_flag.exists():
        started = time.perf_counter()
        importer = Importer(uow_factory=container.uow, vault=container.vault, audit=container.audit,
                            clock=container.clock)
        import_cohort(importer, container.uow, patients=size, seed=42, as_of=AS_OF, now=AS_OF,
                      nudge_for=nudge_mapper(container.catalog), batch_size=5000)
        ready_flag.write_text(f"{size}\n")
        print(f"  prepared {size:,} patients in {time.perf_counter() - started:.0f} s (cached in {folder})",
              flush=True)
    return container


def _drop_page_cache() -> bool:
    """Write the database back and drop the kernel's page cache (needs root on Linux); False when not allowed."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def _cpu_seconds() -> float:
    """CPU time of this process and its finished child processes (the spawned workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--root", type=Path, default=Path("var/bench"))
    parser.add_argument("--cold", action="store_true",
                        help="drop the page cache before each timed cycle (root only), so every size starts from disk; "
                             "without it a size starts with whatever earlier runs left in memory")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        container = prepare(size, args.root)
        if args.cold and not _drop_page_cache():
            parser.error("--cold needs permission to write /proc/sys/vm/drop_caches (root on Linux)")
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        summary = build_with_workers(container, workers=args.workers, worker="bench",
                                     options=BuildOptions(shard_size=args.shard_size), pinned_now=AS_OF)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        rows.append((size, summary.patients, seconds))
        print(f"  {size:>9,} patients: built {summary.patients:,} in {seconds:.1f} s with {args.workers} worker(s) "
              f"({summary.patients / seconds:,.0f} patients/s; {cpu:.1f} s of CPU in all workers, "
              f"{cpu / summary.patients * 1e6:,.0f} us per patient)", flush=True)
        container.dispose()
    base_size, base_patients, base_seconds = rows[0]
    base_cost = base_seconds / base_patients
    print("\nsize        patients/s   us/patient   cost vs smallest")
    for size, patients, seconds in rows:
        cost = seconds / patients
        print(f"{size:>9,}   {patients / seconds:>10,.0f}   {cost * 1e6:>10.0f}   {cost / base_cost:>6.2f}x "
              f"(vs {base_size:,})")
    largest = rows[-1]
    projected = largest[2] / largest[1] * 1_000_000
    print(f"\nprojected for 1,000,000 patients at the largest size's rate: {projected / 60:.1f} min "
          f"(target: under 3 min)")


if __name__ == "__main__":
    main()
