"""Patient routes for the patient-app backend (``service`` role), contract §4.

``{patient_id}`` is the patient app's own id: it is only ever passed to the identifier vault's
blind index; it is never logged, audited or echoed.
"""

from __future__ import annotations

from email.message import Message
from functools import partial
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from nudge_engine.domain.nudge import Nudge
from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import UnsupportedMediaType, error_responses
from nudge_engine.entrypoints.api.schemas import (
    CODE_PATTERN,
    PATIENT_ID_PATTERN,
    BundleIn,
    ContextRead,
    EventCreate,
    EventQuarantinedRead,
    EventRead,
    NextNudgeRead,
    NudgeContentRead,
    ReadyNudgesRead,
)
from nudge_engine.personalization.agenda import OVERRIDE_FORMAT, parse_weight_overrides
from nudge_engine.personalization.scoring import COMPONENT_NAMES
from nudge_engine.services.delivery import ServedNudge
from nudge_engine.services.events import EventInput

router = APIRouter(prefix="/v1/patients", tags=["patients"])

PatientId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=PATIENT_ID_PATTERN, description="The patient app's own id")
]
SessionId = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=CODE_PATTERN,
          description="The app session: nudges whose behaviour was just done, or whose category was just "
                      "dismissed, in this session are not offered; follow-ups of what was just completed come first"),
]
_WEIGHT = r"(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)"
_PAIR = rf"(?:{'|'.join(sorted(COMPONENT_NAMES))}):{_WEIGHT}"
WEIGHTS_PATTERN = rf"^{_PAIR}(?:,{_PAIR})*$"
Weights = Annotated[
    str | None,
    Query(max_length=200, pattern=WEIGHTS_PATTERN,
          description=f"Late-binding score weights for this request, e.g. 'agenda:2,novelty:0.5' ({OVERRIDE_FORMAT})"),
]
Service = Annotated[Principal, Depends(require_role(Role.SERVICE))]
Services = Annotated[ApiServices, Depends(get_services)]
FHIR_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})


@router.get(
    "/{patient_id}/next-nudge",
    response_model=NextNudgeRead,
    responses={
        204: {"description": "No nudge to show now"},
        **error_responses(401, 403, 404, 422, 503),
    },
    summary="The nudge to show this patient now",
)
async def next_nudge(
    patient_id: PatientId, principal: Service, services: Services, session_id: SessionId = None,
    weights: Weights = None,
) -> Response:
    """Serve the best ready nudge (re-checked by the guardrails if the context changed since the build),
    re-ranked by what happened in the app session when ``session_id`` is given, and re-scored under
    late-binding ``weights`` when given."""
    overrides = parse_weight_overrides(weights)
    served = await services.run(partial(
        services.delivery.next_nudge, source_id=patient_id, actor_id=principal.token_id, session_id=session_id,
        weights=overrides,
    ))
    if served is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(next_nudge_body(served), media_type="application/json")


_CONTENT: dict[Nudge, bytes] = {}  # a nudge's NudgeContentRead JSON, made once per catalog nudge


def next_nudge_body(served: ServedNudge) -> bytes:
    """:class:`NextNudgeRead` as JSON, byte for byte what ``model_dump_json`` writes (a test pins it), without
    validating a model per serve: the nudge's part is rendered by pydantic once per nudge, the rest by orjson."""
    content = _CONTENT.get(served.nudge)
    if content is None:
        n = served.nudge
        content = NudgeContentRead(
            id=n.id, category=n.category, intensity=n.intensity, duration_min=n.duration_min,
            tags=sorted(n.tags), title=n.title, body=n.body,
        ).model_dump_json().encode()
        if len(_CONTENT) >= 4096:  # a reloaded catalog brings new objects; the old ones go
            _CONTENT.clear()
        _CONTENT[served.nudge] = content
    return b"".join((
        b'{"delivery_id":', orjson.dumps(served.delivery_id), b',"nudge":', content,
        b',"caution":', orjson.dumps(list(served.caution)),
        b',"served_at":', orjson.dumps(served.served_at, option=orjson.OPT_UTC_Z),
        b',"expires_at":', orjson.dumps(served.expires_at, option=orjson.OPT_UTC_Z), b"}",
    ))


@router.post(
    "/{patient_id}/events",
    status_code=status.HTTP_201_CREATED,
    response_model=EventRead,
    responses={
        201: {
            "description": "Stored (or, for a repeated Idempotency-Key, the first answer replayed)",
            "headers": {"Idempotent-Replayed": {"schema": {"type": "string"}, "description": "true on a replay"}},
        },
        202: {"description": "Outside the tracking plan and set aside (NUDGE_TRACKING_MODE=quarantine); not stored "
                             "(for a repeated Idempotency-Key, the first answer replayed)",
              "model": EventQuarantinedRead,
              "headers": {"Idempotent-Replayed": {"schema": {"type": "string"}, "description": "true on a replay"}}},
        **error_responses(401, 403, 404, 409, 413, 422, 503),
    },
    summary="Record a patient event",
)
async def record_event(
    *,
    patient_id: PatientId,
    event: EventCreate,
    principal: Service,
    services: Services,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
    ] = None,
) -> Response:
    """Store one event; a retried request with the same ``Idempotency-Key`` returns the first answer.
    An event outside the tracking plan is refused (422 naming the field) or, in quarantine mode, set aside (202)."""
    recorded = await services.run(partial(
        services.events.record,
        source_id=patient_id,
        event=EventInput(
            kind=event.type, occurred_at=event.occurred_at, nudge_id=event.nudge_id,
            session_id=event.session_id, properties=event.properties,
        ),
        idempotency_key=idempotency_key,
        actor_id=principal.token_id,
    ))
    if recorded.set_aside is not None:
        body = EventQuarantinedRead.model_validate(recorded.body)
        answer: Response = JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    else:
        answer = json_response(EventRead.model_validate(recorded.body), status_code=status.HTTP_201_CREATED)
    if recorded.replayed:
        answer.headers["Idempotent-Replayed"] = "true"
    return answer


def json_response(model: BaseModel, *, status_code: int = status.HTTP_200_OK) -> Response:
    """``model`` as its JSON body, serialised here: a route that returns a :class:`Response` spares FastAPI
    a second validation of the response model and, for a plain ``def`` route, a second worker-thread hop."""
    return Response(model.model_dump_json().encode(), status_code=status_code, media_type="application/json")


async def fhir_json(request: Request) -> None:
    """Accept ``application/fhir+json`` and ``application/json`` bodies only."""
    header = request.headers.get("content-type")
    if header is None:
        raise UnsupportedMediaType("Content-Type must be application/fhir+json or application/json")
    message = Message()
    message["content-type"] = header
    if message.get_content_type() not in FHIR_MEDIA_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/fhir+json or application/json")


_BUNDLE_SCHEMA = {"$ref": "#/components/schemas/BundleIn"}


@router.put(
    "/{patient_id}/context",
    response_model=ContextRead,
    responses={
        200: {"description": "Context replaced (or unchanged)"},
        201: {"description": "Unknown patient enrolled", "model": ContextRead},
        **error_responses(401, 403, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/fhir+json": {"schema": _BUNDLE_SCHEMA},
                "application/json": {"schema": _BUNDLE_SCHEMA},
            },
        }
    },
    summary="Replace the patient's clinical context with a FHIR R4 Bundle",
)
def replace_context(
    *,
    patient_id: PatientId,
    principal: Service,
    _media: Annotated[None, Depends(fhir_json)],
    bundle: BundleIn,
    services: Services,
    response: Response,
) -> ContextRead:
    """Validate and replace atomically; an unknown id enrols the patient (201). Bad input: 422, nothing stored."""
    update = services.context.replace(
        source_id=patient_id, document=bundle.model_dump(exclude_unset=True), actor_id=principal.token_id
    )
    if update.enrolled:
        response.status_code = status.HTTP_201_CREATED
    return ContextRead(
        status="enrolled" if update.enrolled else "replaced" if update.changed else "unchanged",
        context_version=update.context_version,
        resources=dict(update.resources),
        ready_nudges=ReadyNudgesRead(kept=update.ready_kept, superseded=update.ready_superseded),
    )
