"""Liveness, readiness and metrics (no role: no patient data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import error_response, error_responses
from nudge_engine.entrypoints.api.schemas import HealthRead, ReadinessRead

router = APIRouter(tags=["operations"])
Services = Annotated[ApiServices, Depends(get_services)]


@router.get("/healthz", response_model=HealthRead, summary="Liveness")
def healthz() -> HealthRead:
    return HealthRead(status="ok")


@router.get(
    "/readyz", response_model=ReadinessRead, responses=error_responses(503),
    summary="Readiness: database reachable and rule set loaded",
)
def readyz(services: Services) -> ReadinessRead | JSONResponse:
    problems: list[tuple[str, str]] = []
    try:
        with services.container.uow() as uow:
            uow.session.execute(text("SELECT 1"))
    except Exception:
        problems.append(("database_unreachable", "the database does not answer"))
    if services.guardrails is None:
        problems.append(("ruleset_not_loaded", "no guardrail rule set is loaded"))
    if problems:
        return error_response(503, *problems)
    assert services.guardrails is not None
    return ReadinessRead(status="ready", database="ok", ruleset=services.guardrails.ruleset_digest)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus"}},
    summary="Prometheus metrics",
)
def metrics(services: Services) -> Response:
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
