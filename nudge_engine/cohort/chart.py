"""Per-patient lists that the builders fill, and cheap shared time stamps.

Builders loop only over the patients a feature applies to, and only over the first ``count`` of
the block (the rest are drawn, to keep the random stream fixed, but never built).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.context import (
    ClinicalFact,
    Condition,
    Medication,
    Moment,
    Observation,
    Procedure,
)


@lru_cache(maxsize=65536)
def day_moment(as_of_day: date, days_before: int) -> Moment:
    """A date-only moment ``days_before`` UTC days before ``as_of_day``; shared, since immutable."""
    return Moment.of_date(as_of_day - timedelta(days=days_before))


def instant(epoch_seconds: int) -> Moment:
    return Moment(datetime.fromtimestamp(epoch_seconds, UTC))


class Chart:
    """The clinical lists of one block, indexed by position in the block."""

    def __init__(self, count: int, as_of: datetime) -> None:
        self.count = count
        self.as_of = as_of
        self.as_of_day = as_of.date()
        self.as_of_epoch = int(as_of.timestamp())
        self.conditions: list[list[Condition]] = [[] for _ in range(count)]
        self.medications: list[list[Medication]] = [[] for _ in range(count)]
        self.procedures: list[list[Procedure]] = [[] for _ in range(count)]
        self.observations: list[list[Observation]] = [[] for _ in range(count)]
        self.facts: list[list[ClinicalFact]] = [[] for _ in range(count)]

    def day(self, days_before: int) -> Moment:
        return day_moment(self.as_of_day, days_before)

    def rows(self, mask: npt.NDArray[np.bool_], *columns: npt.NDArray[np.generic]) -> Iterator[tuple[int, ...]]:
        """(index, column values...) for each patient in ``mask`` that is built, as Python scalars."""
        idx = np.flatnonzero(mask[: self.count])
        if idx.size == 0:
            return iter(())
        picked = [col[idx].tolist() for col in columns]
        return zip(idx.tolist(), *picked, strict=True)
