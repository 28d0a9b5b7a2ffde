"""App histories: local daytime, ordered, and shaped by the hidden traits so learners have signal."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from statistics import mean
from zoneinfo import ZoneInfo

from nudge_engine.cohort import NUDGE_CATEGORIES, TRAIT_KEYS, EventType, SyntheticPatient
from tests.unit.cohort.cohort_queries import AS_OF

Patients = list[SyntheticPatient]


def _rate(patients: Patients, numerator: EventType, denominator: EventType) -> float:
    counts = Counter(e.kind for p in patients for e in p.events)
    return counts[numerator] / counts[denominator]


def test_deliveries_fall_between_8_and_20_patient_local_time(cohort: Patients) -> None:
    for p in cohort[:2000]:
        zone = ZoneInfo(p.timezone)
        for e in p.events:
            if e.kind is EventType.DELIVERED:
                assert 8 <= e.at.astimezone(zone).hour < 20


def test_events_are_in_time_order_and_within_eight_weeks(cohort: Patients) -> None:
    start = AS_OF - timedelta(days=58)
    for p in cohort[:5000]:
        times = [e.at for e in p.events]
        assert times == sorted(times)
        assert all(t >= start and t >= p.enrolled_at - timedelta(days=1) for t in times)


def test_nudge_events_carry_a_category_and_activity_events_minutes(cohort: Patients) -> None:
    for p in cohort[:2000]:
        for e in p.events:
            if e.kind is EventType.ACTIVITY:
                assert e.minutes is not None
                assert e.minutes >= 5
                assert e.category is None
            else:
                assert e.category in NUDGE_CATEGORIES
                assert e.nudge_id is not None


def test_every_open_and_completion_follows_a_delivery_of_the_same_nudge(cohort: Patients) -> None:
    for p in cohort[:2000]:
        delivered: Counter[str | None] = Counter()
        for e in p.events:
            if e.kind is EventType.DELIVERED:
                delivered[e.nudge_id] += 1
            elif e.kind in {EventType.OPENED, EventType.COMPLETED, EventType.DISMISSED}:
                assert delivered[e.nudge_id] > 0


def test_patients_with_a_high_open_rate_open_more(cohort: Patients) -> None:
    ranked = sorted(cohort, key=lambda p: p.traits["open_rate"])
    quarter = len(ranked) // 4
    low = _rate(ranked[:quarter], EventType.OPENED, EventType.DELIVERED)
    high = _rate(ranked[-quarter:], EventType.OPENED, EventType.DELIVERED)
    assert high > 2 * low


def test_personas_differ_in_activity(cohort: Patients) -> None:
    def minutes_per_patient(persona: str) -> float:
        group = [p for p in cohort if p.persona == persona]
        return mean(sum(e.minutes or 0 for e in p.events) for p in group)

    assert minutes_per_patient("athlete") > 3 * minutes_per_patient("drifting")


def test_completion_follows_the_category_propensity(cohort: Patients) -> None:
    keen = [p for p in cohort if p.traits["complete.exercise"] > 0.6]
    reluctant = [p for p in cohort if p.traits["complete.exercise"] < 0.2]

    def exercise_completion(group: Patients) -> float:
        kinds = Counter(e.kind for p in group for e in p.events if e.category == "exercise")
        return kinds[EventType.COMPLETED] / kinds[EventType.OPENED]

    assert exercise_completion(keen) > 2 * exercise_completion(reluctant)


def test_traits_have_every_key_and_stay_in_range(cohort: Patients) -> None:
    for p in cohort[:2000]:
        assert tuple(p.traits) == TRAIT_KEYS
        assert all(0 <= p.traits[k] <= 1 for k in TRAIT_KEYS if k.endswith("_rate") or k.startswith("complete."))


def test_recently_enrolled_patients_have_shorter_histories(cohort: Patients) -> None:
    new = [p for p in cohort if AS_OF - p.enrolled_at < timedelta(days=14)]
    settled = [p for p in cohort if AS_OF - p.enrolled_at > timedelta(days=60)]
    assert new
    assert mean(len(p.events) for p in new) < 0.5 * mean(len(p.events) for p in settled)
