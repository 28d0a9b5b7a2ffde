"""Features are computed column-wise from event histories, per patient and window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.catalog import CATEGORY_CODE, load_catalog
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.features import (
    ACTIVITY_LEVELS,
    ENGAGEMENT_STATES,
    FeatureSettings,
    PatientFeatures,
    compute_features,
)

CATALOG = load_catalog(Path(__file__).resolve().parents[3] / "nudge_engine" / "data" / "catalog.yaml")
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DAY = 86_400


def _events(rows: list[tuple[int, str, str | None, float, float]]) -> EventColumns:
    """(patient row, type, nudge id, days ago, minutes)."""
    return EventColumns.from_records(
        patient_row=[r[0] for r in rows], types=[r[1] for r in rows], nudge_ids=[r[2] for r in rows],
        ts=[NOW.timestamp() - r[3] * DAY for r in rows], minutes=[r[4] for r in rows], catalog=CATALOG,
    )


def _features(events: EventColumns, n: int, enrolled_days_ago: float = 100.0) -> PatientFeatures:
    return compute_features(
        events, n_patients=n, enrolled_at_s=np.full(n, NOW.timestamp() - enrolled_days_ago * DAY),
        now_s=NOW.timestamp(), settings=FeatureSettings(),
    )


def test_counts_split_by_window_type_and_category() -> None:
    ev = _events([
        (0, "delivered", "ex-walk-10min", 1, 0), (0, "completed", "ex-walk-10min", 1, 0),
        (0, "delivered", "sleep-screens-off", 10, 0), (1, "opened", "diet-plate-method", 3, 0),
        (0, "delivered", "ex-stairs", 40, 0),  # outside the 28-day window
    ])
    f = _features(ev, 2)
    assert f.counts_short[0, EventType.DELIVERED] == 1
    assert f.counts_long[0, EventType.DELIVERED] == 2
    assert f.counts_long[1, EventType.OPENED] == 1
    assert f.delivered_by_category[0, CATEGORY_CODE[Category.EXERCISE]] == 1
    assert f.completed_by_category[0, CATEGORY_CODE[Category.EXERCISE]] == 1
    assert f.delivered_by_category[0, CATEGORY_CODE[Category.SLEEP]] == 1


def test_days_since_and_completion_rate() -> None:
    ev = _events([(0, "delivered", "ex-walk-10min", 2.5, 0), (0, "completed", "ex-walk-10min", 2, 0)])
    f = _features(ev, 2)
    assert f.days_since_delivery[0] == pytest.approx(2.5)
    assert f.days_since_engagement[0] == pytest.approx(2.0)
    assert np.isinf(f.days_since_event[1])
    assert f.completion_rate[0] > f.completion_rate[1]


def test_engagement_state_follows_enrolment_and_last_engagement() -> None:
    ev = _events([(1, "opened", "ex-walk-10min", 3, 0), (2, "completed", "ex-walk-10min", 20, 0),
                  (3, "delivered", "ex-walk-10min", 1, 0)])
    f = _features(ev, 4)
    states = [ENGAGEMENT_STATES[s] for s in f.engagement]
    assert states == ["dormant", "active", "lapsing", "dormant"]  # a delivery alone is not engagement
    assert ENGAGEMENT_STATES[_features(ev, 4, enrolled_days_ago=3).engagement[1]] == "new"


def test_activity_level_from_weekly_minutes() -> None:
    ev = _events([(1, "activity", None, 1, 300.0), (2, "activity", None, 2, 700.0)])
    f = _features(ev, 3)
    assert [ACTIVITY_LEVELS[a] for a in f.activity_level] == ["low", "moderate", "high"]
    assert f.activity_minutes_short[2] == pytest.approx(700.0)


def test_events_in_the_future_are_ignored() -> None:
    ev = _events([(0, "completed", "ex-walk-10min", -1, 0)])
    assert _features(ev, 1).counts_long.sum() == 0


def test_an_unknown_event_type_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="field 'type'"):
        _events([(0, "liked", None, 1, 0)])


def test_removed_nudges_keep_their_events_without_a_catalog_position() -> None:
    ev = _events([(0, "delivered", "retired-nudge", 1, 0)])
    assert ev.nudge_idx[0] == -1 and ev.category_code[0] == -1
    assert _features(ev, 1).counts_long[0, EventType.DELIVERED] == 1
