"""A patient's clinical context as the guardrails see it: plain, immutable, time-aware.

Every time stamp is a :class:`Moment`: an aware UTC instant plus whether the source gave only a
date. Rules count days on calendar dates and compare hour windows on instants; a date-only value
stands for 23:59:59Z of its date in hour windows (rules-spec §0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time


@dataclass(frozen=True, slots=True)
class Moment:
    """A point in time from a clinical record; ``date_only`` when the source had no time of day."""

    at: datetime
    date_only: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Moment needs an aware datetime")

    @classmethod
    def of_date(cls, day: date) -> Moment:
        return cls(datetime.combine(day, time(0, 0), tzinfo=UTC), date_only=True)

    @property
    def day(self) -> date:
        """The UTC calendar date, used for windows counted in days."""
        return self.at.astimezone(UTC).date()

    @property
    def instant(self) -> datetime:
        """The instant used for windows in hours or minutes (end of day for date-only values)."""
        if self.date_only:
            return datetime.combine(self.day, time(23, 59, 59), tzinfo=UTC)
        return self.at.astimezone(UTC)

    def iso(self) -> str:
        return self.day.isoformat() if self.date_only else self.at.astimezone(UTC).isoformat().replace(
            "+00:00", "Z"
        )


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Quantity:
    value: float
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    codings: tuple[Coding, ...]
    clinical_status: str | None = None  # active | recurrence | relapse | inactive | remission | resolved
    verification_status: str | None = None  # confirmed | provisional | refuted | entered-in-error ...
    onset: Moment | None = None
    abatement: Moment | None = None
    recorded: Moment | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class Procedure:
    codings: tuple[Coding, ...]
    status: str | None = None  # completed | in-progress | not-done | entered-in-error ...
    performed: Moment | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class Medication:
    codings: tuple[Coding, ...]
    status: str | None = None  # active | completed | stopped | intended | on-hold | entered-in-error
    start: Moment | None = None
    end: Moment | None = None
    resource_type: str = "MedicationStatement"
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    codings: tuple[Coding, ...]
    status: str | None = None  # final | amended | corrected | preliminary | cancelled | entered-in-error
    effective: Moment | None = None
    quantity: Quantity | None = None
    value_coding: Coding | None = None
    value_string: str | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClinicalFact:
    """A clinician-recorded fact without a standard code (contract §5)."""

    kind: str  # FactKind value
    effective: Moment | None = None
    value_string: str | None = None
    quantity: Quantity | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class PatientContext:
    """Everything the guardrails may look at for one patient. No identifiers in here."""

    birth_date: date | None = None
    sex: str | None = None
    conditions: tuple[Condition, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    medications: tuple[Medication, ...] = ()
    observations: tuple[Observation, ...] = ()
    facts: tuple[ClinicalFact, ...] = ()

    def age_at(self, when: datetime) -> int | None:
        """Whole years at ``when`` (UTC date), or None when the birth date is unknown."""
        if self.birth_date is None:
            return None
        today = when.astimezone(UTC).date()
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class PatientIdentifiers:
    """Direct identifiers from a FHIR Patient. Only the identifier store may persist these."""

    source_id: str
    names: tuple[str, ...] = ()
    birth_date: date | None = None
    telecom: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    record_numbers: tuple[str, ...] = ()  # MRN, SSN, driver's licence, passport, insurance ...

    def as_mapping(self) -> dict[str, list[str]]:
        return {
            "source_id": [self.source_id],
            "names": list(self.names),
            "birth_date": [self.birth_date.isoformat()] if self.birth_date else [],
            "telecom": list(self.telecom),
            "addresses": list(self.addresses),
            "record_numbers": list(self.record_numbers),
        }


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """One patient as read from an import source: identifiers kept apart from clinical context."""

    identifiers: PatientIdentifiers
    context: PatientContext
    deceased: bool = False
    timezone: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # False when the source held no Patient resource: the stored demographics and identifiers are kept
    has_demographics: bool = True
