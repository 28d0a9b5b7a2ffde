"""A patient's stage follows from the enrolment date and, for early advancement, from progress."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.agenda import patient_stages, stage_of
from nudge_engine.personalization.events import EventColumns
from tests.unit.agenda.support import PROGRAMMES, Event, days, events_of, patients

ENROLLED = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
T2D = PROGRAMMES["t2d_lifestyle"]


@pytest.mark.parametrize(("day", "stage"), [
    (0, "onboarding"), (6.9, "onboarding"), (7, "activity_build_up"), (41, "activity_build_up"),
    (42, "eating_and_strength"), (83, "eating_and_strength"), (84, "maintenance"), (400, "maintenance"),
])
def test_without_progress_the_stage_follows_the_calendar_week(day: float, stage: str) -> None:
    state = stage_of(T2D, ENROLLED, EventColumns.empty(), ENROLLED + days(day))
    assert state.stage == stage and not state.early


def test_twelve_walks_after_meals_move_a_patient_on_before_week_7() -> None:
    walks: list[Event] = [(ENROLLED + days(8 + i), "completed", "ex-walk-after-meals", None) for i in range(11)]
    walks.append((ENROLLED + days(20), "activity", None, 25.0))  # a logged 25-minute walk counts too
    now = ENROLLED + days(21)
    state = stage_of(T2D, ENROLLED, events_of([walks]), now)
    assert state.stage == "eating_and_strength" and state.early
    assert state.entered_at_s == (ENROLLED + days(20)).timestamp()
    assert stage_of(T2D, ENROLLED, events_of([walks[:-1]]), now).stage == "activity_build_up"


def test_progress_before_the_stage_began_and_opens_do_not_count() -> None:
    early_walks: list[Event] = [(ENROLLED + days(i * 0.5), "completed", "ex-walk-10min", None) for i in range(12)]
    opens: list[Event] = [(ENROLLED + days(10 + i * 0.1), "opened", "ex-walk-after-meals", None) for i in range(20)]
    state = stage_of(T2D, ENROLLED, events_of([early_walks + opens]), ENROLLED + days(12))
    assert state.stage == "activity_build_up" and not state.early


def test_events_after_now_are_ignored() -> None:
    future: list[Event] = [(ENROLLED + days(30), "completed", "ex-walk-after-meals", None)] * 12
    assert stage_of(T2D, ENROLLED, events_of([future]), ENROLLED + days(10)).stage == "activity_build_up"


def test_a_batch_gets_each_patient_s_own_stage_and_none_without_a_programme() -> None:
    batch = patients(["t2d_lifestyle", "hypertension", ""], enrolled=ENROLLED)
    stages = patient_stages(batch, PROGRAMMES, ENROLLED + days(20))
    assert stages.record(0) == {"programme": "t2d_lifestyle", "version": T2D.version, "stage": "activity_build_up",
                                "early": False}
    assert stages.record(1)["stage"] == "salt_and_activity"  # type: ignore[index]
    assert stages.record(2) is None


def test_stage_of_needs_time_zones() -> None:
    with pytest.raises(InvalidInput):
        stage_of(T2D, ENROLLED.replace(tzinfo=None), EventColumns.empty(), ENROLLED)
