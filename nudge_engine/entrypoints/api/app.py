"""The app factory, and the one table of every router the API mounts.

Adding a router is one line in :data:`ROUTERS`. Every route under ``/v1/`` must declare its roles
(``Depends(require_role(...))``): :func:`create_app` refuses to build an app with an undeclared one.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, FastAPI
from sqlalchemy import URL

from clinical_review.routes import router as review_router
from nudge_engine.bootstrap import Container
from nudge_engine.domain.errors import ConfigurationError, NudgeEngineError
from nudge_engine.entrypoints.api.auth import undeclared_routes
from nudge_engine.entrypoints.api.dependencies import ApiServices
from nudge_engine.entrypoints.api.errors import install_error_handlers
from nudge_engine.entrypoints.api.metrics import ApiMetrics
from nudge_engine.entrypoints.api.middleware import RequestContextMiddleware
from nudge_engine.entrypoints.api.routes import audit, feedback, health, patients
from nudge_engine.logs import get_logger
from nudge_engine.services.context_updates import ContextUpdater
from nudge_engine.services.delivery import (
    BurdenServePolicy,
    CatalogNudges,
    CompiledGuardrails,
    DeliveryService,
    GuardrailPort,
    NudgeSource,
    ReviewRouting,
    ServePolicy,
)
from nudge_engine.services.events import EventRecorder
from nudge_engine.services.feedback import FeedbackService
from nudge_engine.services.importing import Importer
from nudge_engine.services.tokens import TokenService

# Every router of the API, in one place. Add a router here, and nowhere else.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    patients.router,
    review_router,
    feedback.router,
    audit.router,
)

if TYPE_CHECKING:
    from nudge_engine.personalization.catalog import Catalog
    from nudge_engine.personalization.session import SessionRules
    from nudge_engine.tracking.intake import TrackingGate
    from nudge_engine.tracking.settings import DataSettings

_log = get_logger(__name__)
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a patient's context bundle; events are tiny
BENCH_FLAG = "NUDGE_BENCH_BARE"


def _version() -> str:
    try:
        return version("nudge-engine")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0.0.0"


def default_guardrails(container: Container) -> GuardrailPort | None:
    """The container's rule set, compiled once. Invalid: production stops; development starts not
    ready (``/readyz`` 503) and never serves a nudge that would need a re-check."""
    try:
        return CompiledGuardrails(container.ruleset)
    except NudgeEngineError as exc:
        if container.settings.is_production:
            raise
        _log.error("ruleset_not_loaded", error_type=type(exc).__name__)
        return None


def load_catalog_of(container: Container) -> Catalog:
    """The container's catalog (required: an invalid one stops start-up)."""
    return container.catalog


def data_services(
    container: Container, data: DataSettings | None, session_rules: SessionRules | None
) -> tuple[DataSettings, TrackingGate, SessionRules]:
    """Tracking gate and session rules from the data-governance settings, the tracking plan and the catalog."""
    from nudge_engine.personalization.session import SessionRules
    from nudge_engine.tracking.intake import TrackingGate
    from nudge_engine.tracking.plan import load_tracking_plan
    from nudge_engine.tracking.settings import DataSettings

    settings = data or DataSettings()
    plan = load_tracking_plan(settings.tracking_plan)
    rules = session_rules or SessionRules.from_parts(
        entries=container.catalog.entries, behaviour_of_nudge=plan.behaviour_of_nudge,
        behaviour_of_activity=plan.behaviour_of_activity,
    )
    return settings, TrackingGate(plan, settings.tracking_mode), rules


def create_app(
    container: Container,
    *,
    guardrails: GuardrailPort | None = None,
    serve_policy: ServePolicy | None = None,
    nudges: NudgeSource | None = None,
    review: ReviewRouting | None = None,
    data: DataSettings | None = None,
    session_rules: SessionRules | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    token_cache_ttl: float = 5.0,
    bench_bare: bool | None = None,
) -> FastAPI:
    """The HTTP API over ``container``. Ports not given fall back to the container's or to safe defaults."""
    rules = guardrails if guardrails is not None else default_guardrails(container)
    if review is None and guardrails is None and rules is not None:  # the container's rule set: its review queue
        from clinical_review.routing import ReviewQueueRouting

        review = ReviewQueueRouting(ruleset=lambda: container.ruleset,
                                    nudges={n.id: n for n in container.catalog.nudges()})
    catalog = load_catalog_of(container) if serve_policy is None or nudges is None else None
    policy = serve_policy if serve_policy is not None else BurdenServePolicy(cast("Catalog", catalog))
    content = nudges if nudges is not None else CatalogNudges(cast("Catalog", catalog))
    metrics = ApiMetrics(container.uow)
    uow, vault, audit, clock = container.uow, container.vault, container.audit, container.clock
    data, tracking, session_rules = data_services(container, data, session_rules)
    burden = container.catalog.burden
    importer = Importer(uow_factory=uow, vault=vault, audit=audit, clock=clock)
    services = ApiServices(
        container=container,
        tokens=TokenService(uow_factory=uow, audit=audit, clock=clock, cache_ttl=token_cache_ttl),
        delivery=DeliveryService(
            uow_factory=uow, vault=vault, audit=audit, clock=clock, guardrails=rules, nudges=content, policy=policy,
            review=review, observer=metrics, session_rules=session_rules, session_window=data.session_window,
            snapshots=container.snapshot_reads, retained=data.decision_window,
        ),
        events=EventRecorder(uow_factory=uow, vault=vault, audit=audit, clock=clock, tracking=tracking,
                             max_age=data.event_window if data.low_retention else None),
        context=ContextUpdater(
            uow_factory=uow, vault=vault, audit=audit, clock=clock, importer=importer, guardrails=rules,
            nudges=content, review=review, observer=metrics,
        ),
        feedback=FeedbackService(
            uow_factory=uow, vault=vault, audit=audit, clock=clock,
            default_caps=(burden.max_per_day, burden.max_per_week),
            rule_ids=_rule_ids(container) if guardrails is None else None,
            ruleset_digest=rules.ruleset_digest if rules is not None else None,
        ),
        metrics=metrics,
        guardrails=rules,
        inline=container.engine.dialect.name == "sqlite",
        threads=service_threads(container),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        container.dispose()

    app = FastAPI(
        title="nudge-engine",
        version=_version(),
        description="Next health nudge per patient, behind fail-closed clinical guardrails.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.services = services
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    if bench_bare if bench_bare is not None else os.environ.get(BENCH_FLAG) == "1":
        from nudge_engine.entrypoints.api.routes import bench

        app.include_router(bench.router)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, tokens=services.tokens, max_body_bytes=max_body_bytes
    )
    install_tracked_openapi(app, tracking)
    missing = undeclared_routes(app.routes)
    if missing:
        raise ConfigurationError(f"routes without a role declaration: {', '.join(missing)}")
    return app


def install_tracked_openapi(app: FastAPI, tracking: TrackingGate) -> None:
    """The OpenAPI document shows the tracking plan as the events body (one variant per event type)."""
    from nudge_engine.tracking.plan import event_json_schema

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()  # FastAPI's own document (cached on the app), then the plan put in
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            if "EventCreate" in schemas:
                schemas["EventCreate"] = event_json_schema(tracking.plan)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


LOCAL_DATABASE_THREADS = 2


def service_threads(container: Container) -> int:
    """Service calls one API worker runs at once in threads (PostgreSQL): ``NUDGE_API_THREADS`` when set; else
    :data:`LOCAL_DATABASE_THREADS` for a database on this machine, whose round trips are short enough for two
    threads to keep a core busy (more only queue for the interpreter lock: in 60-second runs of
    ``benchmarks/bench_api.py`` two threads served every endpoint faster than ten, next-nudge's p99 36 ms
    against 59 ms), and the pool's size for a database across the network, whose waits more threads overlap."""
    if container.settings.api_threads is not None:
        return container.settings.api_threads
    return LOCAL_DATABASE_THREADS if database_is_local(container.engine.url) else pool_size(container)


def database_is_local(url: URL) -> bool:
    """Whether ``url`` names a database on this machine: loopback, or a Unix socket (no host, or a path)."""
    socket = url.query.get("host")  # psycopg: ?host=/run/postgresql
    host = url.host or (socket if isinstance(socket, str) else "")
    return host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")


def pool_size(container: Container) -> int:
    """Connections the engine's pool keeps open (10 when the pool does not say)."""
    size = getattr(container.engine.pool, "size", None)
    return int(size()) if callable(size) else 10


def _rule_ids(container: Container) -> tuple[str, ...] | None:
    """The loaded rule set's ids (rule reports must name one); None when it does not load."""
    try:
        return container.ruleset.rule_ids
    except NudgeEngineError:
        return None


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: settings from ``NUDGE_*``, secrets ensured, logging configured."""
    app = create_app(Container.from_env())
    settle_heap()
    return app


def settle_heap() -> None:
    """Move what start-up built (modules, rule set, catalog, prebuilt statements) out of the collector's sight.

    Python's full collection walks every tracked object; in a worker with the app loaded that took
    about 125 ms, during which the worker answered nothing (the benchmark's p99 was such pauses).
    Frozen objects are never collected, so a full collection only walks what requests allocated
    since (about 13 ms). Start-up objects live as long as the worker anyway.
    """
    gc.collect()
    gc.freeze()
