"""The serve-time check's scalar quiet-hours test agrees with the calendar's array form everywhere."""

from __future__ import annotations

import itertools

from nudge_engine.personalization.calendar import in_quiet
from nudge_engine.personalization.serve import _quiet


def test_scalar_quiet_hours_match_the_array_form_for_plain_wrapping_and_empty_windows() -> None:
    minutes = range(0, 1440, 7)
    bounds = [0, 1, 479, 480, 481, 1259, 1260, 1439]  # 08:00 and 21:00 and their neighbours, both ends of the day
    disagree = [
        (m, s, e)
        for m, s, e in itertools.product(minutes, bounds, bounds)
        if bool(in_quiet(m, s, e)) != _quiet(m, s, e)
    ]
    assert disagree == []
