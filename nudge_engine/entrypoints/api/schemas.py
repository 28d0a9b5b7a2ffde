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


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    occurred_at: AwareDatetime = Field(description="When it happened; at most 5 minutes in the future")
    session_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = None
    properties: Annotated[dict[PropertyKey, PropertyValue], Field(max_length=32)] = Field(
        default_factory=dict, description="Codes, counts and measures only (e.g. minutes); no free text",
        json_schema_extra={"additionalProperties": False},
    )


class NudgeEventCreate(_EventBase):
    """Something the patient did with a nudge that was served to them."""

    type: Literal["delivered", "opened", "dismissed", "completed"]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)]


class ActivityEventCreate(_EventBase):
    """Activity the patient reported (``properties.minutes`` ...), optionally prompted by a nudge."""

    type: Literal["activity"]
    nudge_id: Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)] | None = None


EventCreate = Annotated[NudgeEventCreate | ActivityEventCreate, Field(discriminator="type")]


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
