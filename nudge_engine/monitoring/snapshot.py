"""What the monitors look at: one snapshot of aggregates over the current and the reference window.

Plain data (numbers, per-day series, per-patient feature samples without ids), filled by
:mod:`nudge_engine.monitoring.queries` and judged by :mod:`nudge_engine.monitoring.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Windows:
    now: datetime
    current_start: datetime
    reference_start: datetime

    @property
    def reference_end(self) -> datetime:
        return self.current_start


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass
class MonitorSnapshot:
    windows: Windows
    days: list[date] = field(default_factory=list)
    patients_built: list[int] = field(default_factory=list)  # per day
    blocked_by_rule: dict[str, list[int]] = field(default_factory=dict)  # rule -> patients per day
    review_by_rule: dict[str, list[int]] = field(default_factory=dict)
    features: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)  # name -> (reference, current)
    scores: tuple[FloatArray, FloatArray] = field(default_factory=lambda: (np.zeros(0), np.zeros(0)))
    review_pending: int = 0
    review_overdue: int = 0
    review_backlog: list[int] = field(default_factory=list)  # pending at the end of each day
    decision_hours: FloatArray = field(default_factory=lambda: np.zeros(0))  # decided in the current window
    rates: dict[str, tuple[Rate, Rate]] = field(default_factory=dict)  # serve/open/completion: (reference, current)
    eligible_patients: int = 0
    starved_patients: int = 0
    last_context_update: datetime | None = None
    last_event: datetime | None = None

    def day_index(self, start: datetime, end: datetime) -> list[int]:
        return [i for i, d in enumerate(self.days) if start.date() <= d < end.date()]
