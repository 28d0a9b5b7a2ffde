"""Patient events as columns: the one input the build loads from ``patient_events`` per batch.

One SELECT gives every column: ``patient_id`` (mapped to the patient's row in the batch), ``type``,
``nudge_id`` (mapped to the catalog position), ``occurred_at`` (epoch seconds) and
``properties->minutes`` for activity events. Rows may come in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.catalog import CATEGORY_CODE, Catalog


class EventType(IntEnum):
    """Event types the app reports (contract §4), as small integer codes."""

    DELIVERED = 0
    OPENED = 1
    DISMISSED = 2
    COMPLETED = 3
    ACTIVITY = 4


EVENT_CODE: dict[str, EventType] = {t.name.lower(): t for t in EventType}
ENGAGEMENT_TYPES = (EventType.OPENED, EventType.COMPLETED, EventType.ACTIVITY)


@dataclass(frozen=True, slots=True)
class EventColumns:
    """Events of one batch. ``category_code`` and ``nudge_idx`` are -1 when the event has none."""

    patient_row: npt.NDArray[np.int32]
    type_code: npt.NDArray[np.int8]
    category_code: npt.NDArray[np.int8]
    nudge_idx: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    minutes: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        n = len(self.patient_row)
        for name in ("type_code", "category_code", "nudge_idx", "ts", "minutes"):
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"EventColumns: field '{name}': length {len(getattr(self, name))}, expected {n}")

    def __len__(self) -> int:
        return len(self.patient_row)

    @classmethod
    def empty(cls) -> EventColumns:
        return cls(
            np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.int8),
            np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.float32),
        )

    @classmethod
    def from_records(
        cls,
        *,
        patient_row: Sequence[int] | npt.NDArray[np.integer],
        types: Sequence[str],
        nudge_ids: Sequence[str | None],
        ts: Sequence[float] | npt.NDArray[np.number],
        minutes: Sequence[float | None] | None,
        catalog: Catalog,
        activity_category: Category = Category.EXERCISE,
    ) -> EventColumns:
        """Columns from raw values as read from the database. Unknown event types are an error."""
        try:
            type_code = np.fromiter((EVENT_CODE[t] for t in types), dtype=np.int8, count=len(types))
        except KeyError as exc:
            raise InvalidInput(f"patient_events: field 'type': unknown event type {exc.args[0]!r}") from None
        nudge_idx = catalog.indices(nudge_ids)
        category = np.where(nudge_idx >= 0, catalog.category_code[np.maximum(nudge_idx, 0)], -1).astype(np.int8)
        category[(type_code == EventType.ACTIVITY) & (nudge_idx < 0)] = CATEGORY_CODE[activity_category]
        mins = np.zeros(len(types), np.float32) if minutes is None else np.array(
            [m or 0.0 for m in minutes], dtype=np.float32
        )
        return cls(
            np.asarray(patient_row, dtype=np.int32), type_code, category, nudge_idx,
            np.asarray(ts, dtype=np.int64), mins,
        )

    def select(self, mask: npt.NDArray[np.bool_]) -> EventColumns:
        return EventColumns(
            self.patient_row[mask], self.type_code[mask], self.category_code[mask],
            self.nudge_idx[mask], self.ts[mask], self.minutes[mask],
        )
