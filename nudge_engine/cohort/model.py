"""What the generator yields: one synthetic patient with a clinical record and an app history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from nudge_engine.domain.context import PatientRecord
from nudge_engine.domain.nudge import Category


class EventType(StrEnum):
    DELIVERED = "delivered"
    OPENED = "opened"
    DISMISSED = "dismissed"
    COMPLETED = "completed"
    ACTIVITY = "activity"


class Programme(StrEnum):
    T2D_LIFESTYLE = "t2d_lifestyle"
    HYPERTENSION = "hypertension"
    CARDIAC_REHAB = "cardiac_rehab"
    GENERAL_WELLNESS = "general_wellness"
    WEIGHT_MANAGEMENT = "weight_management"


class SyntheticEvent(NamedTuple):
    """One app event. A NamedTuple, not a dataclass: millions are built and it is ~3x cheaper.

    ``at`` is an aware UTC instant; the patient's local time is ``at.astimezone(ZoneInfo(zone))``.
    Nudge events carry ``category`` and ``nudge_id``; activity events carry ``minutes``.
    """

    kind: EventType
    at: datetime
    category: Category | None = None
    nudge_id: str | None = None
    minutes: int | None = None


@dataclass(frozen=True, slots=True)
class SyntheticPatient:
    """A synthetic patient: record (identifiers apart from context), programme, history, hidden traits.

    ``traits`` are the hidden response propensities a simulator may use (``open_rate``,
    ``complete.<category>``, ``preferred_hour`` ...); ``persona`` names the hidden behaviour type they
    were drawn around. Neither is visible to the engine through the record or the events.
    """

    record: PatientRecord
    timezone: str
    programme: Programme
    enrolled_at: datetime
    events: tuple[SyntheticEvent, ...]
    traits: Mapping[str, float]
    persona: str

    @property
    def patient_id(self) -> str:
        return self.record.identifiers.source_id
