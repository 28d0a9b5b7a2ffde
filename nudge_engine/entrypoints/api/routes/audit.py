"""Auditor routes (contract §4): the de-identified audit trail and its integrity.

Records carry random surrogate ids only; no identifier field exists to leak. Each read of the
trail is itself audited (``exported``, with the count), in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from nudge_engine.audit.export import EventFilter, iter_records
from nudge_engine.audit.trail import AuditEvent
from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import error_responses
from nudge_engine.entrypoints.api.schemas import CODE_PATTERN

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require_role(Role.AUDITOR))]
Services = Annotated[ApiServices, Depends(get_services)]
MAX_PAGE = 1000


class AuditRecordRead(BaseModel):
    """One audit record (contract §7): no names, contact details, record numbers, birth dates or free text."""

    seq: int
    recorded_at: str
    event_type: str
    actor_role: str
    actor_id: str | None
    patient_ref: str | None = Field(description="The patient's random surrogate id, never an identifier")
    nudge_id: str | None
    decision: str | None
    rule_ids: list[str]
    ruleset_digest: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPageRead(BaseModel):
    records: list[AuditRecordRead]
    next_after_seq: int | None = Field(description="Pass as after_seq for the next page; null on the last page")


class AuditVerifyRead(BaseModel):
    ok: bool
    records_checked: int
    head_seq: int
    checkpoints_checked: int
    first_bad_seq: int | None
    reason: str | None


@router.get("/events", response_model=AuditPageRead, responses=error_responses(401, 403, 422, 503),
            summary="De-identified audit records, filtered by time, type, rule and decision, paged by sequence")
def audit_events(
    principal: Auditor,
    services: Services,
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: Annotated[str | None, Query(max_length=48, pattern=CODE_PATTERN)] = None,
    rule: Annotated[str | None, Query(max_length=32, pattern=CODE_PATTERN)] = None,
    decision: Annotated[str | None, Query(max_length=16, pattern=CODE_PATTERN)] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPageRead:
    container = services.container
    filters = EventFilter(since=since, until=until, event_type=event_type, rule_id=rule, decision=decision,
                          after_seq=after_seq)
    with container.uow() as uow:
        rows = list(iter_records(uow.session, filters, limit=limit + 1))
        page, more = rows[:limit], len(rows) > limit
        container.audit.append(uow.session, [AuditEvent(
            "exported", "auditor", actor_id=principal.token_id,
            details={"records": len(page), "via": "api", "after_seq": after_seq},
        )], now=container.clock())
        uow.commit()
    return AuditPageRead(
        records=[AuditRecordRead.model_validate(r) for r in page],
        next_after_seq=int(page[-1]["seq"]) if more and page else None,
    )


@router.get("/verify", response_model=AuditVerifyRead, responses=error_responses(401, 403, 503),
            summary="Integrity of the whole audit trail: hash chain, head and signed checkpoints")
def audit_verify(principal: Auditor, services: Services) -> AuditVerifyRead:
    container = services.container
    with container.uow() as uow:
        result = container.audit.verify(uow.session)
    return AuditVerifyRead.model_validate(result.as_dict())
