"""Per-patient features from event histories, computed column-wise (no per-patient Python loop)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from nudge_engine.personalization.catalog import CATEGORIES
from nudge_engine.personalization.events import ENGAGEMENT_TYPES, EventColumns, EventType

DAY = 86_400
ENGAGEMENT_STATES = ("new", "active", "lapsing", "dormant")
ACTIVITY_LEVELS = ("low", "moderate", "high")
N_TYPES = len(EventType)


class FeatureSettings(BaseModel):
    """Windows and thresholds that turn raw events into features and states."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    short_window_days: int = Field(default=7, ge=1, le=90)
    long_window_days: int = Field(default=28, ge=1, le=365)
    new_member_days: int = Field(default=14, ge=0, description="enrolled for fewer days than this: 'new'")
    active_days: int = Field(default=7, ge=1, description="engaged within this many days: 'active'")
    lapsing_days: int = Field(default=28, ge=1, description="engaged within this many days: 'lapsing', else 'dormant'")
    moderate_minutes_per_week: float = Field(default=60.0, ge=0)
    high_minutes_per_week: float = Field(default=150.0, ge=0)

    @property
    def history_days(self) -> int:
        """How far back the features look (the build needs events at least this old)."""
        return max(self.long_window_days, self.lapsing_days, self.short_window_days)


@dataclass(frozen=True, slots=True)
class PatientFeatures:
    """Features of the patients of one batch; every array has one row per patient."""

    counts_short: npt.NDArray[np.float32]  # (P, event types) in the short window
    counts_long: npt.NDArray[np.float32]  # (P, event types) in the long window
    delivered_by_category: npt.NDArray[np.float32]  # (P, categories), long window
    completed_by_category: npt.NDArray[np.float32]  # (P, categories), long window
    days_since_event: npt.NDArray[np.float64]  # inf when none in the history
    days_since_engagement: npt.NDArray[np.float64]
    days_since_delivery: npt.NDArray[np.float64]
    completion_rate: npt.NDArray[np.float64]  # smoothed completed / delivered, long window
    open_rate: npt.NDArray[np.float64]
    activity_minutes_short: npt.NDArray[np.float32]
    activity_minutes_long: npt.NDArray[np.float32]
    engagement: npt.NDArray[np.int8]  # index into ENGAGEMENT_STATES
    activity_level: npt.NDArray[np.int8]  # index into ACTIVITY_LEVELS
    history_events: npt.NDArray[np.int32]  # events in the long window

    def __len__(self) -> int:
        return len(self.engagement)

    def behaviour_matrix(self) -> npt.NDArray[np.float64]:
        """Engagement and activity features the learned clusters and the bandit context use."""
        long = self.counts_long
        return np.column_stack(
            [
                np.log1p(long[:, EventType.OPENED]),
                np.log1p(long[:, EventType.COMPLETED]),
                np.log1p(long[:, EventType.DISMISSED]),
                self.completion_rate,
                self.open_rate,
                np.log1p(self.activity_minutes_long / 4.0),
                np.minimum(self.days_since_engagement, 60.0) / 60.0,
            ]
        )


BEHAVIOUR_FEATURES = (
    "log_opened_long", "log_completed_long", "log_dismissed_long", "completion_rate", "open_rate",
    "log_activity_minutes_per_week", "days_since_engagement_scaled",
)


def compute_features(
    events: EventColumns,
    *,
    n_patients: int,
    enrolled_at_s: npt.NDArray[np.float64],
    now_s: float,
    settings: FeatureSettings,
) -> PatientFeatures:
    """Features at ``now_s`` (epoch seconds). Events after ``now_s`` are ignored."""
    age = now_s - events.ts
    seen = age >= 0
    short = seen & (age < settings.short_window_days * DAY)
    long = seen & (age < settings.long_window_days * DAY)
    row, typ = events.patient_row.astype(np.int64), events.type_code.astype(np.int64)
    key = row * N_TYPES + typ
    size = n_patients * N_TYPES
    counts_short = np.bincount(key[short], minlength=size).reshape(n_patients, N_TYPES).astype(np.float32)
    counts_long = np.bincount(key[long], minlength=size).reshape(n_patients, N_TYPES).astype(np.float32)

    n_cat = len(CATEGORIES)
    cat = events.category_code.astype(np.int64)
    has_cat = long & (cat >= 0)
    by_cat = row * n_cat + cat

    def per_category(kind: EventType) -> npt.NDArray[np.float32]:
        m = has_cat & (typ == kind)
        return np.bincount(by_cat[m], minlength=n_patients * n_cat).reshape(n_patients, n_cat).astype(np.float32)

    def days_since(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        latest = np.full(n_patients, -np.inf)
        np.maximum.at(latest, row[mask], events.ts[mask].astype(np.float64))
        return (now_s - latest) / DAY

    activity = typ == EventType.ACTIVITY
    minutes_short = np.bincount(row[short & activity], weights=events.minutes[short & activity], minlength=n_patients)
    minutes_long = np.bincount(row[long & activity], weights=events.minutes[long & activity], minlength=n_patients)
    engaged = np.isin(typ, np.array([int(t) for t in ENGAGEMENT_TYPES]))

    delivered = counts_long[:, EventType.DELIVERED].astype(np.float64)
    completion_rate = (counts_long[:, EventType.COMPLETED] + 0.5) / (delivered + 2.0)
    open_rate = (counts_long[:, EventType.OPENED] + 1.0) / (delivered + 2.0)
    since_engagement = days_since(seen & engaged)

    enrolled_days = (now_s - enrolled_at_s) / DAY
    engagement = np.full(n_patients, 3, dtype=np.int8)
    engagement[since_engagement <= settings.lapsing_days] = 2
    engagement[since_engagement <= settings.active_days] = 1
    engagement[enrolled_days < settings.new_member_days] = 0

    weekly = minutes_long / (settings.long_window_days / 7.0)
    level = np.zeros(n_patients, dtype=np.int8)
    level[weekly >= settings.moderate_minutes_per_week] = 1
    level[weekly >= settings.high_minutes_per_week] = 2

    return PatientFeatures(
        counts_short=counts_short,
        counts_long=counts_long,
        delivered_by_category=per_category(EventType.DELIVERED),
        completed_by_category=per_category(EventType.COMPLETED),
        days_since_event=days_since(seen),
        days_since_engagement=since_engagement,
        days_since_delivery=days_since(seen & (typ == EventType.DELIVERED)),
        completion_rate=np.minimum(completion_rate, 1.0),
        open_rate=np.minimum(open_rate, 1.0),
        activity_minutes_short=minutes_short.astype(np.float32),
        activity_minutes_long=minutes_long.astype(np.float32),
        engagement=engagement,
        activity_level=level,
        history_events=np.bincount(row[long], minlength=n_patients).astype(np.int32),
    )
