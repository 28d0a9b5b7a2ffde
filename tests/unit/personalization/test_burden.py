"""Eligibility, freshness, caps in the local calendar, quiet hours, snooze and opt-outs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.candidates import DropReason
from nudge_engine.personalization.catalog import CATEGORY_CODE
from nudge_engine.personalization.serve import Delivery, ServePrefs, serve_time_check
from nudge_engine.services.delivery import BurdenServePolicy, Preferences
from tests.unit.personalization.burden_support import CATALOG, one_patient, plan_candidates, reason

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def test_caps_count_in_the_patients_local_calendar_across_dst() -> None:
    # Berlin springs forward on 2025-03-30. Local midnight that day is 2025-03-29 23:00 UTC (CET),
    # not 22:00 UTC as today's CEST offset would suggest.
    now = _at(2025, 3, 30, 18)
    yesterday_late = datetime(2025, 3, 29, 22, 30, tzinfo=UTC)  # 23:30 local on the 29th
    today_early = datetime(2025, 3, 29, 23, 15, tzinfo=UTC)  # 00:15 local on the 30th
    two_yesterday = one_patient(tz="Europe/Berlin", deliveries=[(yesterday_late, "ex-stairs"),
                                                                (yesterday_late, "stress-4-7-8")])
    cand = plan_candidates(two_yesterday, now)
    assert cand.earliest_s[0, CATALOG.index["sleep-caffeine-cutoff"]] == now.timestamp()

    one_today = one_patient(tz="Europe/Berlin", deliveries=[(yesterday_late, "ex-stairs"),
                                                            (today_early, "stress-4-7-8")])
    cand = plan_candidates(one_today, now)
    # one delivery today, the daily cap is 2: still open overall, but stress is capped for the day
    assert cand.earliest_s[0, CATALOG.index["sleep-caffeine-cutoff"]] == now.timestamp()
    next_morning = _at(2025, 3, 31, 8).timestamp()  # midnight falls in quiet hours (21:00-08:00)
    assert cand.earliest_s[0, CATALOG.index["stress-nature-break"]] == next_morning


def test_a_full_day_defers_to_the_next_local_morning_and_a_full_week_drops_as_capped() -> None:
    now = _at(2025, 6, 4, 12)  # a Wednesday
    today = [(_at(2025, 6, 4, 9), "ex-stairs"), (_at(2025, 6, 4, 10), "stress-4-7-8")]
    cand = plan_candidates(one_patient(tz="Europe/Berlin", deliveries=today), now)
    assert reason(cand, "sleep-caffeine-cutoff") is None
    assert cand.earliest_s[0, CATALOG.index["sleep-caffeine-cutoff"]] == _at(2025, 6, 5, 8).timestamp()

    week = [(_at(2025, 6, 2, 9) + timedelta(hours=3 * i), "ex-stairs") for i in range(7)]
    cand = plan_candidates(one_patient(tz="Europe/Berlin", deliveries=week), now)
    assert reason(cand, "sleep-caffeine-cutoff") is DropReason.CAPPED


def test_week_boundary_is_local_monday_across_the_autumn_change() -> None:
    # New York falls back on Sunday 2025-11-02; the new week starts Monday 2025-11-03 00:00 EST.
    now = _at(2025, 11, 3, 12, tz=NEW_YORK)
    sunday_night = _at(2025, 11, 2, 23, 30, tz=NEW_YORK)
    monday_early = _at(2025, 11, 3, 0, 30, tz=NEW_YORK)
    last_week = [(sunday_night - timedelta(hours=6 * i), "ex-stairs") for i in range(7)]
    cand = plan_candidates(one_patient(tz="America/New_York", deliveries=last_week), now)
    assert reason(cand, "sleep-caffeine-cutoff") is None
    this_week = [(monday_early, "stress-4-7-8")] * 3
    cand = plan_candidates(one_patient(tz="America/New_York", deliveries=this_week), now)
    assert reason(cand, "stress-nature-break") is DropReason.CAPPED  # stress: 3 a week


def test_quiet_hours_that_wrap_midnight_defer_to_their_local_end() -> None:
    late = _at(2025, 6, 4, 23, 30)
    cand = plan_candidates(one_patient(tz="Europe/Berlin"), late)
    assert cand.earliest_s[0, CATALOG.index["ex-stairs"]] == _at(2025, 6, 5, 8).timestamp()
    early = _at(2025, 6, 5, 6)
    cand = plan_candidates(one_patient(tz="Europe/Berlin"), early)
    assert cand.earliest_s[0, CATALOG.index["ex-stairs"]] == _at(2025, 6, 5, 8).timestamp()
    day = _at(2025, 6, 5, 13)
    lunch_quiet = one_patient(tz="Europe/Berlin", quiet_start_min=12 * 60, quiet_end_min=14 * 60)
    assert plan_candidates(lunch_quiet, day).earliest_s[0, 0] == _at(2025, 6, 5, 14).timestamp()


def test_cooldown_drops_a_repeat_and_releases_it_afterwards() -> None:
    now = _at(2025, 6, 4, 12)
    recent = one_patient(tz="Europe/Berlin", deliveries=[(now - timedelta(hours=47), "ex-walk-10min")])
    assert reason(plan_candidates(recent, now), "ex-walk-10min") is DropReason.COOLDOWN  # 48 h cooldown
    older = one_patient(tz="Europe/Berlin", deliveries=[(now - timedelta(hours=49), "ex-walk-10min")])
    assert reason(plan_candidates(older, now), "ex-walk-10min") is None


def test_a_delivery_folded_out_of_the_raw_events_holds_the_cooldown_as_a_raw_one_does() -> None:
    now = _at(2025, 6, 4, 12)
    walk = CATALOG.index["ex-walk-10min"]

    def folded(hours_ago: float) -> PatientBatch:
        return replace(one_patient(tz="Europe/Berlin"), folded_rows=np.array([0], np.int32),
                       folded_nudges=np.array([walk], np.int32),
                       folded_delivered_s=np.array([(now - timedelta(hours=hours_ago)).timestamp()]))

    assert reason(plan_candidates(folded(47), now), "ex-walk-10min") is DropReason.COOLDOWN  # 48 h cooldown
    assert reason(plan_candidates(folded(49), now), "ex-walk-10min") is None
    assert reason(plan_candidates(folded(-1), now), "ex-walk-10min") is None  # not yet delivered at `now`


def test_opt_outs_and_programme_and_segment_targeting() -> None:
    now = _at(2025, 6, 4, 12)
    opted = np.zeros(len(Category), dtype=bool)
    opted[CATEGORY_CODE[Category.SLEEP]] = True
    cand = plan_candidates(one_patient(opted_out_categories=opted), now)
    assert reason(cand, "sleep-caffeine-cutoff") is DropReason.OPTED_OUT
    assert reason(cand, "stress-4-7-8") is None
    everything = plan_candidates(one_patient(opted_out_all=True), now)
    assert reason(everything, "stress-4-7-8") is DropReason.OPTED_OUT
    assert reason(cand, "diet-plate-method") is DropReason.NOT_ELIGIBLE  # t2d programme only
    t2d = plan_candidates(one_patient(programme="t2d_lifestyle"), now)
    assert reason(t2d, "diet-plate-method") is None
    assert reason(cand, "edu-foot-care") is DropReason.NOT_ELIGIBLE  # targets segment t2d
    assert reason(plan_candidates(one_patient(flags={"has_t2d": True}), now), "edu-foot-care") is None
    assert reason(cand, "edu-flu-vaccine") is DropReason.NOT_ELIGIBLE  # outside its validity window


def test_a_snooze_beyond_the_horizon_drops_and_a_short_one_defers() -> None:
    now = _at(2025, 6, 4, 12)
    short = one_patient(tz="Europe/Berlin", snoozed_until_s=(now + timedelta(hours=3)).timestamp())
    assert plan_candidates(short, now).earliest_s[0, 0] == (now + timedelta(hours=3)).timestamp()
    into_quiet = one_patient(tz="Europe/Berlin", snoozed_until_s=_at(2025, 6, 4, 22).timestamp())
    assert plan_candidates(into_quiet, now).earliest_s[0, 0] == _at(2025, 6, 5, 8).timestamp()
    long = one_patient(tz="Europe/Berlin", snoozed_until_s=(now + timedelta(days=3)).timestamp())
    assert reason(plan_candidates(long, now), "stress-4-7-8") is DropReason.SNOOZED


def test_a_pending_review_is_not_asked_for_again() -> None:
    from dataclasses import replace

    now = _at(2025, 6, 4, 12)
    batch = one_patient()
    i = CATALOG.index["hyd-8-glasses"]
    batch = replace(batch, pending_review_rows=np.array([0], np.int32), pending_review_nudges=np.array([i], np.int32))
    assert reason(plan_candidates(batch, now), "hyd-8-glasses") is DropReason.PENDING_REVIEW


def test_serve_time_check_applies_quiet_hours_in_the_patients_zone() -> None:
    now = datetime(2025, 6, 4, 21, 30, tzinfo=UTC)  # 23:30 in Berlin, 17:30 in New York
    berlin, new_york = ServePrefs(tz="Europe/Berlin"), ServePrefs(tz="America/New_York")
    check = {"catalog": CATALOG, "deliveries": [], "now": now}
    assert serve_time_check("ex-stairs", prefs=berlin, **check) is DropReason.QUIET_HOURS  # type: ignore[arg-type]
    assert serve_time_check("ex-stairs", prefs=new_york, **check) is None  # type: ignore[arg-type]


def test_serve_time_check_counts_deliveries_since_the_build() -> None:
    now = _at(2025, 6, 4, 12)
    done = [Delivery(_at(2025, 6, 4, 9), "stress-4-7-8", Category.STRESS)]
    prefs = ServePrefs(tz="Europe/Berlin")
    assert serve_time_check("stress-nature-break", catalog=CATALOG, prefs=prefs, deliveries=done, now=now) is (
        DropReason.CAPPED
    )
    assert serve_time_check("stress-4-7-8", catalog=CATALOG, prefs=prefs, deliveries=done, now=now) is (
        DropReason.COOLDOWN
    )
    assert serve_time_check("retired", catalog=CATALOG, prefs=prefs, deliveries=done, now=now) is (
        DropReason.NOT_ELIGIBLE
    )


def test_a_serve_stamped_just_after_this_ones_clock_still_counts_for_caps_and_cooldowns() -> None:
    """A concurrent serve may commit with a later stamp than the moment this serve read the clock."""
    now = _at(2025, 6, 4, 12)
    just_after = [Delivery(now + timedelta(milliseconds=1), "stress-4-7-8", Category.STRESS)]
    prefs = ServePrefs(tz="Europe/Berlin")
    check = {"catalog": CATALOG, "prefs": prefs, "deliveries": just_after, "now": now}

    assert serve_time_check("stress-4-7-8", **check) is DropReason.COOLDOWN  # type: ignore[arg-type]
    assert serve_time_check("stress-nature-break", **check) is DropReason.CAPPED  # type: ignore[arg-type]


def test_serves_of_nudges_no_longer_in_the_catalog_count_for_the_overall_caps() -> None:
    now = _at(2025, 6, 4, 12)
    prefs = Preferences(quiet_start="22:00", quiet_end="07:00", snoozed_until=None, opted_out_all=False,
                        opted_out_categories=(), max_per_day=2, max_per_week=None)
    served = [(f"withdrawn-{h}", now - timedelta(hours=h)) for h in (1, 2)]
    stairs = CATALOG.nudge(CATALOG.index["ex-stairs"])

    def hold(past: list[tuple[str, datetime]]) -> str | None:
        gate = BurdenServePolicy(CATALOG).open(preferences=prefs, timezone="Europe/Berlin", now=now, served=past)
        found = gate.hold(stairs)
        return None if found is None else found.reason

    assert hold(served) == DropReason.CAPPED.value
    assert hold(served[:1]) is None


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
NUDGES = ["ex-stairs", "stress-4-7-8", "stress-nature-break", "sleep-caffeine-cutoff", "mh-gratitude-note"]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    now=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2025, 12, 31)),
    gaps=st.lists(st.integers(min_value=1, max_value=9 * 24 * 60), max_size=8),
    picks=st.lists(st.sampled_from(NUDGES), min_size=8, max_size=8),
    quiet=st.tuples(st.integers(0, 1439), st.integers(0, 1439)),
)
def test_batch_and_serve_time_checks_agree(
    zone: str, now: datetime, gaps: list[int], picks: list[str], quiet: tuple[int, int]
) -> None:
    """A pair the build keeps is servable at its earliest send time; one it drops is refused now."""
    now = now.replace(tzinfo=UTC)
    history = [(now - timedelta(minutes=g), picks[i]) for i, g in enumerate(gaps)]
    batch = one_patient(tz=zone, deliveries=history, quiet_start_min=quiet[0], quiet_end_min=quiet[1])
    cand = plan_candidates(batch, now)
    prefs = ServePrefs(tz=zone, quiet_start=f"{quiet[0] // 60:02d}:{quiet[0] % 60:02d}",
                       quiet_end=f"{quiet[1] // 60:02d}:{quiet[1] % 60:02d}")
    delivered = [Delivery(at, n, CATALOG.entries[CATALOG.index[n]].category) for at, n in history]
    for nudge in NUDGES:
        why = reason(cand, nudge)
        if why in (DropReason.COOLDOWN, DropReason.CAPPED):
            assert serve_time_check(nudge, catalog=CATALOG, prefs=prefs, deliveries=delivered, now=now) is not None
        elif why is None:
            at = datetime.fromtimestamp(cand.earliest_s[0, CATALOG.index[nudge]], UTC)
            verdict = serve_time_check(nudge, catalog=CATALOG, prefs=prefs, deliveries=delivered, now=at)
            assert verdict is None, (nudge, at, verdict)
            if at > now:
                assert serve_time_check(nudge, catalog=CATALOG, prefs=prefs, deliveries=delivered, now=now) in (
                    DropReason.CAPPED, DropReason.QUIET_HOURS,
                )


@pytest.mark.parametrize(("zone", "day"), [("Europe/Berlin", 30), ("America/New_York", 8)])
def test_quiet_hours_end_is_local_on_the_night_of_a_dst_change(zone: str, day: int) -> None:
    tz = ZoneInfo(zone)
    night = datetime(2025, 3, day, 23, 0, tzinfo=tz)
    cand = plan_candidates(one_patient(tz=zone), night)
    end = datetime.fromtimestamp(cand.earliest_s[0, 0], tz)
    assert (end.hour, end.minute) == (8, 0)
    assert end.date() == night.date() + timedelta(days=1)


def test_a_nudge_the_patient_rejected_is_suppressed_for_them_only() -> None:
    from dataclasses import replace

    now = _at(2025, 6, 4, 12)
    i = CATALOG.index["stress-4-7-8"]
    batch = replace(one_patient(), suppressed_rows=np.array([0], np.int32), suppressed_nudges=np.array([i], np.int32))
    cand = plan_candidates(batch, now)
    assert reason(cand, "stress-4-7-8") is DropReason.OPTED_OUT
    assert reason(cand, "stress-nature-break") is None
    prefs = ServePrefs(suppressed_nudges={"stress-4-7-8"})
    assert serve_time_check("stress-4-7-8", catalog=CATALOG, prefs=prefs, deliveries=[], now=now) is (
        DropReason.OPTED_OUT
    )
