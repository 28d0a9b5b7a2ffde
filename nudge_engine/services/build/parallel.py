"""One build cycle by several worker processes on this machine (``nudge-engine build --workers N``).

The calling process starts (or resumes) the cycle and builds shards itself; ``workers - 1`` spawned
processes join the same cycle. Each process claims its own shards through the database (see
:mod:`nudge_engine.adapters.shards`), so the split needs no coordination beyond it, and a process
that dies leaves its shard to the others. The caller adds up every worker's counts and marks the
cycle finished. Each process uses one BLAS thread: the processes are the parallelism.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from threadpoolctl import threadpool_limits

from nudge_engine.bootstrap import Container, system_clock
from nudge_engine.config import Settings
from nudge_engine.domain.errors import InvalidInput
from nudge_engine.services.build.cycle import BuildOptions, CycleSummary
from nudge_engine.services.build.factory import build_cycle


def _pinned(now: datetime | None) -> Callable[[], datetime]:
    return system_clock if now is None else (lambda: now)


def _exit_with_parent() -> None:
    """Stop when the process that spawned this worker is gone (killed, say): no orphan keeps building.

    Stopping mid-shard is safe: nothing of an unstored shard is kept, and its reservation (held by a
    process that no longer runs) goes to the next worker.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _join_cycle(settings: Settings, cycle_id: str, options: BuildOptions, worker: str,
                now: datetime | None) -> CycleSummary:
    """A spawned worker's whole life: build shards of ``cycle_id`` until none is left."""
    from nudge_engine.logs import configure_logging

    _exit_with_parent()

    configure_logging(level=settings.log_level, json=settings.log_json)
    container = Container(settings, clock=_pinned(now))
    try:
        with threadpool_limits(limits=1):
            return build_cycle(container, worker=worker, options=options).run(join=cycle_id, finish=False)
    finally:
        container.dispose()


def build_with_workers(
    container: Container,
    *,
    workers: int,
    worker: str,
    options: BuildOptions,
    pinned_now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CycleSummary:
    """Run (or finish) one cycle with ``workers`` processes; the summary counts every worker's shards.

    ``pinned_now`` fixes the clock of the spawned workers too (benchmarks and tests); by default
    they read the system clock, as ``container`` is expected to.
    """
    if workers > 1 and container.engine.dialect.name == "sqlite" and container.snapshot_uow_factory is None:
        raise InvalidInput("workers: an in-memory SQLite database cannot be shared by several processes")
    cycle = build_cycle(container, worker=worker, options=options)
    if workers <= 1:
        return cycle.run(progress=progress)
    started = time.perf_counter()
    cycle_id, _, resumed = cycle.start_or_resume()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=spawn) as pool:
        helpers = [pool.submit(_join_cycle, container.settings, cycle_id, options, f"{worker}/{k}", pinned_now)
                   for k in range(1, workers)]
        with threadpool_limits(limits=1):
            summary = cycle.run(join=cycle_id, progress=progress, finish=False)
        for helper in helpers:
            summary.add(helper.result())
    summary.resumed = resumed
    summary.finished = cycle.finish(cycle_id, summary)
    summary.seconds = time.perf_counter() - started
    return summary
