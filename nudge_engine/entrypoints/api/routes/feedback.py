"""Feedback routes: patients flag a nudge (``service`` role); clinicians report a rule (``clinician`` role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import error_responses
from nudge_engine.entrypoints.api.routes.patients import PatientId
from nudge_engine.entrypoints.api.schemas import (
    CapsRead,
    FeedbackCreate,
    FeedbackRead,
    RuleReportCreate,
    RuleReportRead,
)
from nudge_engine.services.feedback import Feedback, FeedbackKind, RuleReport, RuleReportKind

router = APIRouter(tags=["feedback"])

Service = Annotated[Principal, Depends(require_role(Role.SERVICE))]
Clinician = Annotated[Principal, Depends(require_role(Role.CLINICIAN))]
Services = Annotated[ApiServices, Depends(get_services)]


@router.post(
    "/v1/patients/{patient_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackRead,
    responses=error_responses(401, 403, 404, 413, 422, 503),
    summary="A patient flags a nudge: not right for me, unsafe for me, too many",
)
def give_feedback(
    *, patient_id: PatientId, body: FeedbackCreate, principal: Service, services: Services
) -> FeedbackRead:
    """The nudge is suppressed for this patient at once; "unsafe for me" also opens a clinician review;
    "too many" lowers this patient's caps. A nudge never served to this patient answers 404."""
    done = services.feedback.record(
        source_id=patient_id, feedback=Feedback(FeedbackKind(body.kind), body.nudge_id), actor_id=principal.token_id
    )
    caps = (CapsRead(max_per_day=done.max_per_day, max_per_week=done.max_per_week)
            if done.max_per_day is not None and done.max_per_week is not None else None)
    return FeedbackRead(
        feedback_id=done.feedback_id, kind=done.kind.value, nudge_id=done.nudge_id, suppressed=done.suppressed,
        review_requested=done.review_item_id is not None, caps=caps,
    )


@router.post(
    "/v1/review/rule-reports",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleReportRead,
    responses=error_responses(401, 403, 404, 413, 422, 503),
    summary="A clinician reports a rule that fired wrongly or failed to fire",
)
def report_rule(*, body: RuleReportCreate, principal: Clinician, services: Services) -> RuleReportRead:
    """Counted per rule and nudge in the monitoring report, beside override rates."""
    done = services.feedback.report_rule(
        RuleReport(body.rule_id, body.nudge_id, RuleReportKind(body.kind), body.reason_code, body.review_item_id),
        actor_id=principal.token_id,
    )
    return RuleReportRead(report_id=done.report_id, rule_id=done.rule_id, nudge_id=done.nudge_id, kind=done.kind.value)
