"""The services the routes use, built once per app by the factory and reached through one dependency.

Where a service call runs: the hot routes (next-nudge, events, and the benchmark's bare endpoint) are
``async`` and hand their one service call to :meth:`ApiServices.run`. On PostgreSQL that is a worker
thread, as FastAPI does for a plain ``def`` route: the call waits on network round trips. On SQLite
it is the event loop itself: the database is in-process, its writers are serialised by one lock
anyway (each transaction begins with ``BEGIN IMMEDIATE``), and a worker thread only adds GIL
handoffs inside that lock (every SQLite call releases the GIL; getting it back behind busy threads
stretches the time the lock is held). The price on SQLite: while another process holds the write
lock (a build shard, say), that worker answers nothing until it can go on, which is how long its
requests would wait in threads too.

On PostgreSQL at most ``threads`` calls run at once per process (``service_threads``: two for a
database on this machine, else as many as the engine's pool keeps open, or ``NUDGE_API_THREADS``). More
than the pool would open an overflow connection per call and close it again when done (a new server
process and unprepared statements for every such call under load); the calls beyond wait on the
event loop instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api.metrics import ApiMetrics
from nudge_engine.services.context_updates import ContextUpdater
from nudge_engine.services.delivery import DeliveryService, GuardrailPort
from nudge_engine.services.events import EventRecorder
from nudge_engine.services.feedback import FeedbackService
from nudge_engine.services.tokens import TokenService

T = TypeVar("T")


@dataclass(frozen=True)
class ApiServices:
    """Everything a route may call. Routes never touch sessions or commit; services own transactions."""

    container: Container
    tokens: TokenService
    delivery: DeliveryService
    events: EventRecorder
    context: ContextUpdater
    feedback: FeedbackService
    metrics: ApiMetrics
    guardrails: GuardrailPort | None
    inline: bool = False  # run service calls on the event loop (SQLite), not in a worker thread
    threads: int = 10  # otherwise: service calls running at once in worker threads (app.service_threads)
    _limiter: list[anyio.CapacityLimiter] = field(default_factory=list, repr=False)

    async def run(self, call: Callable[[], T]) -> T:
        """Run one blocking service call: on the event loop when ``inline``, else in a worker thread."""
        if self.inline:
            return call()
        if not self._limiter:  # made on first use, inside the worker's event loop
            self._limiter.append(anyio.CapacityLimiter(self.threads))
        return await anyio.to_thread.run_sync(call, limiter=self._limiter[0])


async def get_services(request: Request) -> ApiServices:
    """async: FastAPI would run a plain function in a worker thread, one hop per request for nothing."""
    services: ApiServices = request.app.state.services
    return services
