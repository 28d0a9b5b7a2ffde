"""Stored clinical rows as arrays: what the columnar feature reader (``row_features``) takes in.

One entry per stored row (one per coding of each FHIR resource, as the context tables keep them),
as ``adapters.clinical_packs`` decodes them from the packs. Patients are row numbers
``0..n_patients-1``; codes, statuses and units are small vocabularies with integer labels, so the
reader tests membership once per distinct value, not once per row. Times are integer microseconds
since the Unix epoch (UTC), so windows are compared exactly as
:mod:`~nudge_engine.guardrails.timewindows` compares datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

DAY_US = 86_400_000_000
_END_OF_DAY_US = DAY_US - 1_000_000  # 23:59:59Z, what a date-only value stands for in hour windows
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    """``at`` (aware) as whole microseconds since the Unix epoch."""
    delta = at.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def epoch_day(day: date) -> int:
    return (day - EPOCH.date()).days


@dataclass(frozen=True)
class Times:
    """One optional time column: microseconds (0 where absent), presence and date-only flags."""

    us: IntArray
    present: BoolArray
    date_only: BoolArray

    @property
    def day(self) -> IntArray:
        """The UTC calendar date, as days since the epoch."""
        return self.us // DAY_US

    @property
    def instant(self) -> IntArray:
        """The instant for hour and minute windows (end of day for date-only values)."""
        return np.where(self.date_only, self.day * DAY_US + _END_OF_DAY_US, self.us)


@dataclass(frozen=True)
class Labels:
    """A string column as integer labels into a vocabulary (None allowed)."""

    ids: IntArray
    vocabulary: tuple[str | None, ...]

    def where(self, test: Callable[[str | None], bool]) -> BoolArray:
        """Per row: whether its value passes ``test`` (evaluated once per distinct value)."""
        table = np.fromiter((test(v) for v in self.vocabulary), dtype=np.bool_, count=len(self.vocabulary))
        return table[self.ids] if len(self.ids) else np.zeros(0, dtype=np.bool_)

    def isin(self, values: Collection[str | None]) -> BoolArray:
        return self.where(lambda v: v in values)


@dataclass(frozen=True)
class Coded:
    """Columns every coded table has: the patient, the coding, and the resource the row belongs to."""

    patient: IntArray
    code: IntArray  # index into ClinicalRows.codings
    resource: IntArray  # rows of one FHIR resource share a number (one row per coding)

    @property
    def size(self) -> int:
        return len(self.patient)


@dataclass(frozen=True)
class ConditionRows:
    coded: Coded
    clinical_status: Labels
    verification_status: Labels
    onset: Times
    abatement: Times
    recorded: Times


@dataclass(frozen=True)
class ProcedureRows:
    coded: Coded
    status: Labels
    performed: Times


@dataclass(frozen=True)
class MedicationRows:
    coded: Coded
    status: Labels
    start: Times
    end: Times


@dataclass(frozen=True)
class ObservationRows:
    coded: Coded
    status: Labels
    effective: Times
    value: FloatArray  # NaN where the row has no quantity
    unit: Labels
    value_code: Labels  # "system|code" of a coded value, or None


@dataclass(frozen=True)
class FactRows:
    patient: IntArray
    kind: Labels
    effective: Times
    value_string: Labels
    value: FloatArray  # NaN where the fact has no number


@dataclass(frozen=True)
class ClinicalRows:
    """Every stored clinical row of ``n_patients`` patients, as arrays."""

    n_patients: int
    birth_date: tuple[date | None, ...]  # per patient, as the context store reads it back
    codings: tuple[tuple[str, str], ...]  # (system, code) vocabulary of Coded.code
    conditions: ConditionRows
    procedures: ProcedureRows
    medications: MedicationRows
    observations: ObservationRows
    facts: FactRows
