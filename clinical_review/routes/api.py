"""The review queue's JSON API for the ``clinician`` role (contract §4).

``GET /v1/review/items`` lists with filters (status, rule, age, priority), order and paging;
``POST /v1/review/items/{item_id}/decision`` approves or rejects with a coded reason, 409 when the
item was already decided (or is being decided by somebody else at this very moment).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from clinical_review.model import MAX_COMMENT, MAX_PER_PAGE, MAX_SCOPE_DAYS, Actor, Decide, ItemSummary, QueueQuery
from clinical_review.model import ReviewStatus as Status
from clinical_review.model import Verdict as VerdictKind
from clinical_review.wiring import ReviewContext, review_context
from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.errors import error_responses

router = APIRouter(prefix="/v1/review", tags=["review"])

Clinician = Annotated[Principal, Depends(require_role(Role.CLINICIAN))]
Review = Annotated[ReviewContext, Depends(review_context)]
ItemId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]{1,32}$")]
RULE_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"
SORT_PATTERN = r"^-?(priority|due|created|decided)$"


class FiredRead(BaseModel):
    rule: str
    action: str
    evidence: list[str]


class ReviewItemRead(BaseModel):
    id: str
    patient_ref: str = Field(description="The patient's pseudonymous surrogate id (never an identifier)")
    status: Status
    priority: int = Field(description="0 urgent (escalation), 2 routine")
    nudge_id: str
    nudge_title: str | None
    rule_ids: list[str]
    fired: list[FiredRead]
    escalation: str | None
    created_at: datetime
    due_at: datetime
    expires_at: datetime
    overdue: bool
    decided_at: datetime | None
    reason_code: str | None
    comment: str | None
    scope_days: int | None
    version: int

    @classmethod
    def of(cls, item: ItemSummary, now: datetime) -> ReviewItemRead:
        return cls(
            id=item.id, patient_ref=item.patient_ref, status=item.status, priority=item.priority,
            nudge_id=item.nudge_id, nudge_title=item.nudge_title, rule_ids=list(item.rule_ids),
            fired=[FiredRead(rule=f.rule, action=f.action, evidence=list(f.evidence)) for f in item.fired],
            escalation=item.escalation, created_at=item.created_at, due_at=item.due_at, expires_at=item.expires_at,
            overdue=item.overdue(now), decided_at=item.decided_at, reason_code=item.reason_code, comment=item.comment,
            scope_days=item.scope_days, version=item.version,
        )


class ReviewPageRead(BaseModel):
    items: list[ReviewItemRead]
    total: int
    page: int
    per_page: int


class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason_code: str = Field(min_length=1, max_length=64, description="A code of the shipped override-reason set")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT,
                                description="Optional; kept with the item, never written to the audit trail")
    scope_days: int | None = Field(default=None, ge=1, le=MAX_SCOPE_DAYS,
                                   description="Approve this nudge for this patient for N days")
    version: int | None = Field(default=None, ge=0, description="The item version the decision was made on")


class DecisionRead(BaseModel):
    item: ReviewItemRead
    delivery_id: str | None
    scope_id: str | None


@router.get(
    "/items", response_model=ReviewPageRead, responses=error_responses(401, 403, 422, 503),
    summary="The review queue, filtered, sorted and paged",
)
def list_items(
    *,
    principal: Clinician,
    review: Review,
    status: Annotated[Literal["pending", "approved", "rejected", "expired", "all"], Query()] = "pending",
    rule: Annotated[str | None, Query(pattern=RULE_PATTERN)] = None,
    priority: Annotated[int | None, Query(ge=0, le=9)] = None,
    older_than_hours: Annotated[int | None, Query(ge=0, le=87600)] = None,
    newer_than_hours: Annotated[int | None, Query(ge=0, le=87600)] = None,
    sort: Annotated[str, Query(pattern=SORT_PATTERN)] = "priority",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 25,
) -> ReviewPageRead:
    query = QueueQuery(
        status=None if status == "all" else Status(status), rule=rule, priority=priority,
        older_than_hours=older_than_hours, newer_than_hours=newer_than_hours, sort=sort, page=page, per_page=per_page,
    )
    found = review.service.list_items(query)
    now = review.service.now()
    return ReviewPageRead(items=[ReviewItemRead.of(i, now) for i in found.items], total=found.total,
                          page=found.page, per_page=found.per_page)


@router.post(
    "/items/{item_id}/decision", response_model=DecisionRead, responses=error_responses(401, 403, 404, 409, 422, 503),
    summary="Approve or reject one review item with a coded reason",
)
def decide(item_id: ItemId, body: DecisionCreate, principal: Clinician, review: Review) -> DecisionRead:
    command = Decide(VerdictKind(body.decision), body.reason_code, body.comment, body.scope_days, body.version)
    outcome = review.service.decide(item_id, command, actor=Actor(principal.token_id))
    return DecisionRead(item=ReviewItemRead.of(outcome.item, review.service.now()), delivery_id=outcome.delivery_id,
                        scope_id=outcome.scope_id)
