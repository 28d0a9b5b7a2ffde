"""The services the routes use, built once per app by the factory and reached through one dependency."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api.metrics import ApiMetrics
from nudge_engine.services.context_updates import ContextUpdater
from nudge_engine.services.delivery import DeliveryService, GuardrailPort
from nudge_engine.services.events import EventRecorder
from nudge_engine.services.feedback import FeedbackService
from nudge_engine.services.tokens import TokenService


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


async def get_services(request: Request) -> ApiServices:
    """async: FastAPI would run a plain function in a worker thread, one hop per request for nothing."""
    services: ApiServices = request.app.state.services
    return services
