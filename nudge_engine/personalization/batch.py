"""What the build loads for one batch of patients (everything :func:`plan_batch` needs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.catalog import CATEGORIES
from nudge_engine.personalization.events import EventColumns


@dataclass(frozen=True, slots=True)
class PatientPrefs:
    """Burden preferences (``patient_preferences``), one row per patient.

    Quiet hours are minutes after local midnight (``21:00`` -> 1260) and may wrap midnight; equal
    start and end mean no quiet hours. ``snoozed_until_s`` is epoch seconds (-inf: not snoozed).
    ``max_per_day``/``max_per_week`` are personal caps, -1 when unset (the catalog caps apply).
    """

    quiet_start_min: npt.NDArray[np.int32]
    quiet_end_min: npt.NDArray[np.int32]
    snoozed_until_s: npt.NDArray[np.float64]
    opted_out_all: npt.NDArray[np.bool_]
    opted_out_categories: npt.NDArray[np.bool_]  # (P, categories) in CATEGORIES order
    max_per_day: npt.NDArray[np.int32]
    max_per_week: npt.NDArray[np.int32]

    @classmethod
    def defaults(cls, n: int, *, quiet_start_min: int = 21 * 60, quiet_end_min: int = 8 * 60) -> PatientPrefs:
        return cls(
            np.full(n, quiet_start_min, np.int32), np.full(n, quiet_end_min, np.int32),
            np.full(n, -np.inf), np.zeros(n, bool), np.zeros((n, len(CATEGORIES)), bool),
            np.full(n, -1, np.int32), np.full(n, -1, np.int32),
        )


def _empty_rows() -> npt.NDArray[np.int32]:
    return np.zeros(0, np.int32)


@dataclass(frozen=True, slots=True)
class PatientBatch:
    """Per-patient arrays (row ``i`` is one patient) and the batch's events.

    ``patient_idx`` is the build's own patient key; it is passed through to the guardrail port and
    the plan untouched. ``programme`` is '' for no programme. ``flags`` holds one boolean array per
    flag declared in the segments file. ``pending_review_*`` are (row, catalog index) pairs that
    already wait for a clinician.
    """

    patient_idx: npt.NDArray[np.int64]
    tz: npt.NDArray[np.str_]
    locale: npt.NDArray[np.str_]
    programme: npt.NDArray[np.str_]
    enrolled_at_s: npt.NDArray[np.float64]
    flags: Mapping[str, npt.NDArray[np.bool_]]
    prefs: PatientPrefs
    events: EventColumns
    pending_review_rows: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    pending_review_nudges: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    # (row, catalog index) pairs the patient asked never to see again ("not right for me").
    suppressed_rows: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    suppressed_nudges: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    # (row, catalog index) pairs a clinician rejected on the patient's current context version.
    rejected_rows: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    rejected_nudges: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    # (row, catalog index, epoch seconds): last deliveries whose raw events retention folded away;
    # cooldowns count them as they count the deliveries in ``events``.
    folded_rows: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    folded_nudges: npt.NDArray[np.int32] = field(default_factory=_empty_rows)
    folded_delivered_s: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.patient_idx)

    def validate(self) -> None:
        n = len(self)
        for name in ("tz", "locale", "programme", "enrolled_at_s"):
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"PatientBatch: field '{name}': length {len(getattr(self, name))}, expected {n}")
        for name, values in self.flags.items():
            if len(values) != n:
                raise InvalidInput(f"PatientBatch: field 'flags.{name}': length {len(values)}, expected {n}")
        for name in PatientPrefs.__slots__:
            if len(getattr(self.prefs, name)) != n:
                raise InvalidInput(f"PatientBatch: field 'prefs.{name}': wrong length")
        if len(self.events) and (self.events.patient_row.min() < 0 or self.events.patient_row.max() >= n):
            raise InvalidInput("EventColumns: field 'patient_row': outside the batch")
        if not len(self.folded_rows) == len(self.folded_nudges) == len(self.folded_delivered_s):
            raise InvalidInput("PatientBatch: field 'folded_delivered_s': lengths of the folded deliveries differ")
        for kind in ("pending_review", "suppressed", "folded", "rejected"):
            rows, nudges = getattr(self, f"{kind}_rows"), getattr(self, f"{kind}_nudges")
            if len(rows) != len(nudges):
                raise InvalidInput(f"PatientBatch: field '{kind}_nudges': length differs from the rows")
            if len(rows) and (rows.min() < 0 or rows.max() >= n):
                raise InvalidInput(f"PatientBatch: field '{kind}_rows': outside the batch")
