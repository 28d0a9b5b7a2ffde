"""The app factory, and the one table of every router the API mounts.

Adding a router is one line in :data:`ROUTERS`. Every route under ``/v1/`` must declare its roles
(``Depends(require_role(...))``): :func:`create_app` refuses to build an app with an undeclared one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, FastAPI

from clinical_review.routes import router as review_router
from nudge_engine.bootstrap import Container
from nudge_engine.domain.errors import ConfigurationError, NudgeEngineError
from nudge_engine.entrypoints.api.auth import undeclared_routes
from nudge_engine.entrypoints.api.dependencies import ApiServices
from nudge_engine.entrypoints.api.errors import install_error_handlers
from nudge_engine.entrypoints.api.metrics import ApiMetrics
from nudge_engine.entrypoints.api.middleware import RequestContextMiddleware
from nudge_engine.entrypoints.api.routes import health, patients
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
from nudge_engine.services.importing import Importer
from nudge_engine.services.tokens import TokenService

# Every router of the API, in one place. Add a router here, and nowhere else.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    patients.router,
    review_router,
)

if TYPE_CHECKING:
    from nudge_engine.personalization.catalog import Catalog

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


def create_app(
    container: Container,
    *,
    guardrails: GuardrailPort | None = None,
    serve_policy: ServePolicy | None = None,
    nudges: NudgeSource | None = None,
    review: ReviewRouting | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    token_cache_ttl: float = 5.0,
    bench_bare: bool | None = None,
) -> FastAPI:
    """The HTTP API over ``container``. Ports not given fall back to the container's or to safe defaults."""
    rules = guardrails if guardrails is not None else default_guardrails(container)
    catalog = load_catalog_of(container) if serve_policy is None or nudges is None else None
    policy = serve_policy if serve_policy is not None else BurdenServePolicy(cast("Catalog", catalog))
    content = nudges if nudges is not None else CatalogNudges(cast("Catalog", catalog))
    metrics = ApiMetrics(container.uow)
    uow, vault, audit, clock = container.uow, container.vault, container.audit, container.clock
    importer = Importer(uow_factory=uow, vault=vault, audit=audit, clock=clock)
    services = ApiServices(
        container=container,
        tokens=TokenService(uow_factory=uow, audit=audit, clock=clock, cache_ttl=token_cache_ttl),
        delivery=DeliveryService(
            uow_factory=uow, vault=vault, audit=audit, clock=clock, guardrails=rules, nudges=content, policy=policy,
            review=review, observer=metrics,
        ),
        events=EventRecorder(uow_factory=uow, vault=vault, audit=audit, clock=clock),
        context=ContextUpdater(
            uow_factory=uow, vault=vault, audit=audit, clock=clock, importer=importer, guardrails=rules,
            nudges=content, review=review, observer=metrics,
        ),
        metrics=metrics,
        guardrails=rules,
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
    missing = undeclared_routes(app.routes)
    if missing:
        raise ConfigurationError(f"routes without a role declaration: {', '.join(missing)}")
    return app


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: settings from ``NUDGE_*``, secrets ensured, logging configured."""
    return create_app(Container.from_env())
