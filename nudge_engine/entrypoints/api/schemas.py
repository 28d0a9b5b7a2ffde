"""Request and response bodies of the HTTP API (``*Create`` in, ``*Read`` out)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from nudge_engine.domain.nudge import Category, Intensity
from nudge_engine.services.events import EventKind

CODE_PATTERN = r"^[A-Za-z0-9_.:-]+$"
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"

PropertyKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
PropertyValue = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=64, pattern=CODE_PATTERN)]
)


class NudgeContentRead(BaseModel):
    """A nudge as the patient app shows it (contract §6)."""

    id: str
    category: Category
    intensity: Intensity
    duration_min: int | None
    tags: list[str]
    title: str
    body: str


class NextNudgeRead(BaseModel):
    """The nudge to show now. ``delivery_id`` identifies this serve."""

    delivery_id: str
    nudge: NudgeContentRead
    caution: list[str]
    served_at: datetime
    expires_at: datetime


class EventCreate(BaseModel):
    """One patient event. The envelope admits codes, counts and measures only (never free text); which
    types, nudge ids and properties are accepted is the tracking plan's (``data/tracking_plan.yaml``):
    delivered / opened / dismissed / completed need the ``nudge_id`` of a served nudge; activity may name one.
    The OpenAPI document shows the plan itself (see ``app.tracked_openapi``)."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(min_length=1, max_length=32, pattern=CODE_PATTERN,
                               description="An event type of the tracking plan")]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = None
    occurred_at: AwareDatetime = Field(description="When it happened; at most 5 minutes in the future")
    session_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = Field(
        default=None, description="The app session: next-nudge with the same session_id reacts to it")
    properties: Annotated[dict[PropertyKey, PropertyValue], Field(max_length=32)] = Field(
        default_factory=dict, description="Codes, counts and measures only (e.g. minutes); no free text",
        json_schema_extra={"additionalProperties": False},
    )


class ProblemRead(BaseModel):
    field: str
    code: str


class EventQuarantinedRead(BaseModel):
    """The event did not match the tracking plan and was set aside (quarantine mode), not stored."""

    status: Literal["quarantined"]
    intake_id: str
    plan_version: str
    problems: list[ProblemRead]


class EventRead(BaseModel):
    event_id: str
    type: EventKind
    nudge_id: str | None
    occurred_at: datetime
    received_at: datetime


class BundleEntryIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str | None = None  # FHIR's field name
    resource: dict[str, Any]


class BundleIn(BaseModel):
    """A FHIR R4 Bundle (collection or transaction); resources are validated by the FHIR parser."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]  # FHIR's field name
    type: str | None = None
    entry: list[BundleEntryIn] = Field(default_factory=list)


class ReadyNudgesRead(BaseModel):
    kept: int
    superseded: int


class ContextRead(BaseModel):
    """What a context replacement did."""

    status: Literal["enrolled", "replaced", "unchanged"]
    context_version: int
    resources: dict[str, int]
    ready_nudges: ReadyNudgesRead


class HealthRead(BaseModel):
    status: Literal["ok"]


class ReadinessRead(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
    ruleset: str


class NudgeFlagCreate(BaseModel):
    """A patient's flag on a nudge served to them: suppress it (and, for ``unsafe_for_me``, ask a clinician)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["not_right_for_me", "unsafe_for_me"]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)]


class TooManyCreate(BaseModel):
    """The patient gets too many nudges: lower their caps (naming the nudge that tipped it is optional)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["too_many"]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = None


FeedbackCreate = Annotated[NudgeFlagCreate | TooManyCreate, Field(discriminator="kind")]


class CapsRead(BaseModel):
    max_per_day: int
    max_per_week: int


class FeedbackRead(BaseModel):
    """What the flag did: the nudge is suppressed for this patient, a clinician will look, caps came down."""

    feedback_id: str
    kind: Literal["not_right_for_me", "unsafe_for_me", "too_many"]
    nudge_id: str | None
    suppressed: bool
    review_requested: bool
    caps: CapsRead | None


class RuleReportCreate(BaseModel):
    """A clinician's report: this rule fired wrongly, or failed to fire, for this nudge (codes only, no free text)."""

    model_config = ConfigDict(extra="forbid")

    rule_id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)]
    kind: Literal["fired_wrongly", "failed_to_fire"]
    reason_code: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = None
    review_item_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = Field(
        default=None, description="The review item the report is about, if any"
    )


class RuleReportRead(BaseModel):
    report_id: str
    rule_id: str
    nudge_id: str
    kind: Literal["fired_wrongly", "failed_to_fire"]
