"""Rewards are health outcomes (the programme's behaviour done), never opens; retraining learns from them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.context import context_names
from nudge_engine.personalization.ope import LoggedDecisions
from nudge_engine.personalization.rewards import ServedDecisions, outcome_rewards
from nudge_engine.personalization.training import retrain_on_outcomes
from tests.unit.agenda.support import PROGRAMMES, Event, days, events_of
from tests.unit.personalization.burden_support import CATALOG, SEGMENTS

SERVED = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


def _served(nudges: list[str], programme: str = "t2d_lifestyle") -> ServedDecisions:
    n = len(nudges)
    return ServedDecisions(np.arange(n, dtype=np.int32), CATALOG.indices(nudges), np.full(n, SERVED.timestamp()),
                           np.full(n, programme))


def _rewards(nudges: list[str], events: list[list[Event]], programme: str = "t2d_lifestyle") -> list[float]:
    out = outcome_rewards(_served(nudges, programme), events_of(events), PROGRAMMES, CATALOG)
    return [float(r) for r in out.reward]


def test_a_completed_walk_is_rewarded_and_an_open_alone_is_not() -> None:
    walk = "ex-walk-after-meals"
    rewards = _rewards([walk, walk], [
        [(SERVED + days(0.1), "opened", walk, None), (SERVED + days(0.5), "completed", walk, None)],
        [(SERVED + days(0.1), "opened", walk, None)],
    ])
    assert rewards == [1.0, 0.0]


def test_logged_activity_minutes_count_for_an_activity_behaviour() -> None:
    rewards = _rewards(["ex-walk-10min", "ex-walk-10min", "med-same-time-daily"], [
        [(SERVED + days(0.3), "activity", None, 20.0)],
        [(SERVED + days(0.3), "activity", None, 5.0)],  # below the behaviour's 10 minutes
        [(SERVED + days(0.3), "activity", None, 60.0)],  # a medication nudge does not serve activity
    ])
    assert rewards == [1.0, 0.0, 0.0]


def test_the_medicine_taken_counts_within_the_programme_window_only() -> None:
    med = "med-same-time-daily"
    rewards = _rewards([med, med, med], [
        [(SERVED + days(1.5), "completed", med, None)],
        [(SERVED + days(2.5), "completed", med, None)],  # after the 48-hour window
        [(SERVED - days(0.5), "completed", med, None)],  # before the serve
    ], programme="hypertension")
    assert rewards == [1.0, 0.0, 0.0]


def test_completing_an_education_nudge_is_engagement_not_a_health_outcome() -> None:
    edu = "edu-what-is-a1c"
    assert _rewards([edu], [[(SERVED + days(0.2), "completed", edu, None)]]) == [0.0]
    # Without a programme, the served nudge completed counts unless it is onboarding or education.
    assert _rewards([edu, "stress-box-breathing"], [
        [(SERVED + days(0.2), "completed", edu, None)],
        [(SERVED + days(0.2), "completed", "stress-box-breathing", None)],
    ], programme="") == [0.0, 1.0]


def test_opens_are_reported_beside_the_reward_not_in_it() -> None:
    walk = "ex-walk-after-meals"
    out = outcome_rewards(_served([walk]), events_of([[(SERVED + days(0.1), "opened", walk, None)]]), PROGRAMMES,
                          CATALOG)
    assert out.opened.tolist() == [True] and out.reward.tolist() == [0.0]


def test_retraining_learns_from_the_health_outcome_not_from_opens() -> None:
    walk, edu = "ex-walk-after-meals", "edu-what-is-a1c"
    n = 200
    nudges = [walk, edu] * (n // 2)
    events: list[list[Event]] = []
    for i, nudge in enumerate(nudges):
        opened: Event = (SERVED + days(0.1), "opened", nudge, None)
        done: Event = (SERVED + days(0.4), "completed", nudge, None)
        events.append([opened, done] if nudge == walk and i % 4 == 0 else [opened])
    served = _served(nudges)
    k = len(CATALOG)
    names = context_names(SEGMENTS.ids)
    logged = LoggedDecisions(
        np.zeros((n, 7)), np.zeros((n, len(SEGMENTS.ids)), bool), SEGMENTS.ids, CATALOG.ids, CATALOG.category_code,
        CATALOG.priority, np.ones((n, k), bool), np.zeros((n, k), bool), served.nudge.astype(np.intp),
        np.ones(n),  # what the old job logged: 'opened' for every row
        np.full(n, 0.5),
    )
    bandit = LinearThompson(names, CATALOG.ids, CATALOG.category_code)
    trained, outcomes = retrain_on_outcomes(logged, served=served, events=events_of(events), programmes=PROGRAMMES,
                                            catalog=CATALOG, now=SERVED + days(3), bandit=bandit)
    assert outcomes.opened.all() and outcomes.reward.sum() == n // 4
    i_walk, i_edu = CATALOG.index[walk], CATALOG.index[edu]
    assert trained.bandit.reward_sum[i_walk] == n // 4 and trained.bandit.reward_sum[i_edu] == 0
