"""The scheduler's job table: every scheduled job with its trigger, on one screen.

``nudge-engine scheduler`` runs these in one dedicated process (APScheduler 3, in-memory job
store). Every job coalesces missed runs into one, never overlaps itself (``max_instances=1``), and
is skipped when it is more than its grace time late (the next run catches up). The build cycle is
safe to run from several processes anyway: shards are claimed in the database.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import REGISTRY, CollectorRegistry

from nudge_engine.bootstrap import Container
from nudge_engine.logs import bind_job, get_logger
from nudge_engine.monitoring.alerts import AlertSink

log = get_logger(__name__)


@dataclass(frozen=True)
class JobSpec:
    name: str
    trigger: BaseTrigger
    run: Callable[[Container], object]
    grace_seconds: int


def build_job(container: Container) -> object:
    from nudge_engine.services.build.factory import build_cycle

    summary = build_cycle(container, worker=f"{socket.gethostname()}:{os.getpid()}").run()
    checkpoint_job(container)
    return summary.as_dict()


def retrain_job(container: Container) -> object:
    from nudge_engine.services.retraining import retrain_models

    return retrain_models(container.uow, audit=container.audit, catalog=container.catalog,
                          segments=container.segments, programmes=container.programmes, now=container.clock())


def expire_reviews_job(container: Container) -> object:
    from nudge_engine.services.review_expiry import expire_overdue_reviews

    with container.uow() as uow:
        expired = expire_overdue_reviews(uow.session, now=container.clock(), audit=container.audit)
        uow.commit()
    return expired


def checkpoint_job(container: Container) -> object:
    with container.uow() as uow:
        checkpoint = container.audit.checkpoint(uow.session, now=container.clock())
        uow.commit()
    return None if checkpoint is None else checkpoint.head_seq


def monitor_job(container: Container) -> object:
    """Monitoring checks over the sliding windows; crossings become alerts (log, metric, audit record)."""
    from nudge_engine.monitoring.checkup import run_checkup
    from nudge_engine.monitoring.settings import MonitorSettings

    sink = _SINKS.get(id(container))
    if sink is None:  # one per process: the scheduler's metrics live in the default registry
        sink = _SINKS[id(container)] = AlertSink(REGISTRY if not _SINKS else CollectorRegistry())
    with container.uow() as uow:
        checkup = run_checkup(uow.session, now=container.clock(), settings=MonitorSettings(),
                              experiments=container.experiments, sink=sink, audit=container.audit)
        uow.commit()
    return len(checkup.alerts)


_SINKS: dict[int, AlertSink] = {}


def retention_job(container: Container) -> object:
    """Fold and delete raw events and decision details past their windows (the audit trail stays whole)."""
    from nudge_engine.services.retention import apply_retention

    return apply_retention(container)


def job_table() -> list[JobSpec]:
    return [
        JobSpec("build", IntervalTrigger(minutes=30), build_job, grace_seconds=600),
        JobSpec("retrain", CronTrigger(hour=2, minute=30), retrain_job, grace_seconds=3600),
        JobSpec("expire_reviews", IntervalTrigger(minutes=5), expire_reviews_job, grace_seconds=120),
        JobSpec("audit_checkpoint", IntervalTrigger(minutes=15), checkpoint_job, grace_seconds=300),
        JobSpec("monitor", IntervalTrigger(hours=1), monitor_job, grace_seconds=900),
        JobSpec("retention", CronTrigger(hour=3, minute=30), retention_job, grace_seconds=3600),
    ]


def _run(spec: JobSpec, container: Container) -> None:
    with bind_job(spec.name):
        log.info("job_started")
        try:
            result = spec.run(container)
        except Exception:
            log.exception("job_failed")
            raise
        log.info("job_finished", result=result if isinstance(result, int | dict | None) else str(result))


def make_scheduler(container: Container, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """A scheduler (blocking by default) with every job of :func:`job_table` added."""
    sched = scheduler or BlockingScheduler(timezone="UTC")
    for spec in job_table():
        sched.add_job(
            _run, spec.trigger, args=(spec, container), id=spec.name, name=spec.name,
            coalesce=True, max_instances=1, misfire_grace_time=spec.grace_seconds, replace_existing=True,
        )
    return sched
