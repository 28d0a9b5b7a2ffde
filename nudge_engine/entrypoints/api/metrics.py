"""Prometheus metrics, one registry per app (several apps can live in one test process).

Request latency histograms, nudges served, guardrail outcomes by rule (serve-time re-checks), and,
read from the database at scrape time, the review queue size by status and the duration and
decision counts of the last finished build cycle.

With several uvicorn workers, ``nudge-engine serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start: counters and histograms are then written to files there and every scrape, whichever
worker answers it, aggregates all workers (``MultiProcessCollector``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from nudge_engine.adapters.orm import BuildCycleRow, ReviewItemRow
from nudge_engine.domain.nudge import Nudge
from nudge_engine.services.delivery import Recheck

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class DatabaseCollector(Collector):
    """Gauges read at scrape time: review queue by status, last build cycle duration and decisions."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self._uow_factory = uow_factory

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily("nudge_review_queue_items", "Review items by status", labels=["status"])
        duration = GaugeMetricFamily("nudge_build_cycle_duration_seconds", "Duration of the last finished build")
        decisions = GaugeMetricFamily(
            "nudge_build_cycle_outcomes", "Counts recorded by the last finished build cycle", labels=["outcome"]
        )
        with self._uow_factory() as uow:
            for status, count in uow.session.execute(
                select(ReviewItemRow.status, func.count()).group_by(ReviewItemRow.status)
            ):
                queue.add_metric([status], float(count))
            last = uow.session.execute(
                select(BuildCycleRow.started_at, BuildCycleRow.finished_at, BuildCycleRow.counts)
                .where(BuildCycleRow.status == "finished", BuildCycleRow.finished_at.is_not(None))
                .order_by(BuildCycleRow.finished_at.desc())
                .limit(1)
            ).first()
        if last is not None and last.finished_at is not None:
            duration.add_metric([], (last.finished_at - last.started_at).total_seconds())
            for key, value in sorted((last.counts or {}).items()):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    decisions.add_metric([str(key)], float(value))
        yield queue
        yield duration
        yield decisions


class ApiMetrics:
    """The app's metrics; also the delivery service's observer."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode values live in files; metrics are not registered on a live registry.
        self.registry = CollectorRegistry()  # no auto-describe: never query the database at start-up
        own = None if self.multiprocess else self.registry
        self.latency = Histogram(
            "nudge_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=own,
        )
        self.served_total = Counter(
            "nudge_nudges_served", "Nudges served to patients", ["category"], registry=own
        )
        self.guardrail_total = Counter(
            "nudge_guardrail_outcomes", "Guardrail outcomes at serve time and on context updates, by rule",
            ["stage", "decision", "rule"], registry=own,
        )
        self._database = DatabaseCollector(uow_factory)
        if not self.multiprocess:
            self.registry.register(self._database)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def served(self, nudge: Nudge) -> None:
        self.served_total.labels(nudge.category.value).inc()

    def rechecked(self, recheck: Recheck | None, *, stage: str) -> None:
        if recheck is None:
            self.guardrail_total.labels(stage, "unavailable", "").inc()
            return
        rules = recheck.rule_ids or ("",)
        for rule in rules:
            self.guardrail_total.labels(stage, recheck.decision.value, rule).inc()

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self._database)
        return generate_latest(registry)
