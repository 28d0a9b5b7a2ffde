"""The patient's local calendar: day and week boundaries and quiet hours in their own time zone.

Boundaries are computed per distinct time zone with :mod:`zoneinfo`, so a local day is 23 or 25
hours long across a DST change and caps count exactly the deliveries of that local day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"patient: field 'timezone': unknown time zone {name!r}") from None


def parse_hhmm(value: str) -> int:
    """'21:30' -> minutes after local midnight."""
    try:
        hours, minutes = value.split(":")
        h, m = int(hours), int(minutes)
    except ValueError:
        raise InvalidInput(f"preferences: field 'quiet_start/quiet_end': not HH:MM: {value!r}") from None
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise InvalidInput(f"preferences: field 'quiet_start/quiet_end': not HH:MM: {value!r}")
    return 60 * h + m


def in_quiet(minute: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether a local minute-of-day lies in [start, end); the window may wrap midnight; start == end: none."""
    m, s, e = np.asarray(minute), np.asarray(start), np.asarray(end)
    return np.where(s <= e, (s <= m) & (m < e), (m >= s) | (m < e))


def local_midnight(day: date, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def local_at(day: date, minute: int, tz: ZoneInfo) -> float:
    """Epoch of the local wall-clock time ``minute`` on ``day`` (a time in a DST gap moves forward)."""
    # fold=0: a gap time is read with the offset before the change (so it lands after the gap),
    # an ambiguous time means its first occurrence.
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True)
class LocalCalendar:
    """Per patient, at one instant: local minute of day and epoch boundaries of the local day and week."""

    minute: npt.NDArray[np.int32]
    day_start: npt.NDArray[np.float64]
    next_day_start: npt.NDArray[np.float64]
    week_start: npt.NDArray[np.float64]  # Monday 00:00 local
    next_week_start: npt.NDArray[np.float64]
    local_date_ordinal: npt.NDArray[np.int64]
    next_week_ordinal: npt.NDArray[np.int64]


def local_calendar(
    now: datetime, tz_names: npt.NDArray[np.str_]
) -> tuple[LocalCalendar, npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """The calendar of every patient at ``now``; the distinct zones and each patient's index into them."""
    names, inverse = np.unique(tz_names, return_inverse=True)
    cols: list[list[float]] = [[] for _ in range(7)]
    for name in names:
        tz = zone(str(name))
        local = now.astimezone(tz)
        d = local.date()
        monday = d - timedelta(days=d.weekday())
        values = (
            local.hour * 60 + local.minute,
            local_midnight(d, tz),
            local_midnight(d + timedelta(days=1), tz),
            local_midnight(monday, tz),
            local_midnight(monday + timedelta(days=7), tz),
            d.toordinal(),
            (monday + timedelta(days=7)).toordinal(),
        )
        for col, v in zip(cols, values, strict=True):
            col.append(v)
    per_zone = [np.array(c) for c in cols]
    cal = LocalCalendar(
        minute=per_zone[0].astype(np.int32)[inverse],
        day_start=per_zone[1][inverse],
        next_day_start=per_zone[2][inverse],
        week_start=per_zone[3][inverse],
        next_week_start=per_zone[4][inverse],
        local_date_ordinal=per_zone[5].astype(np.int64)[inverse],
        next_week_ordinal=per_zone[6].astype(np.int64)[inverse],
    )
    return cal, names, inverse


def local_times(
    zones: npt.NDArray[np.str_],
    zone_code: npt.NDArray[np.intp],
    ordinals: npt.NDArray[np.int64],
    minutes: npt.NDArray[np.integer],
) -> npt.NDArray[np.float64]:
    """Epoch of local (date ordinal, minute of day) per patient in zone ``zones[zone_code]``.

    Computed once per distinct (zone, date, minute); a batch has few of them.
    """
    key = (zone_code.astype(np.int64) << 40) | (ordinals.astype(np.int64) << 12) | np.asarray(minutes, np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    values = np.array(
        [
            local_at(date.fromordinal(int((k >> 12) & ((1 << 28) - 1))), int(k & 4095), zone(str(zones[k >> 40])))
            for k in uniq
        ],
        dtype=np.float64,
    )
    return values[inverse]
