"""Patient time zones, and vectorised conversion from patient-local wall clock to UTC.

Each zone's UTC offset is looked up once per calendar day (at local noon) and cached, so turning a
million local times into instants is array arithmetic. Times are only generated between 05:00 and
23:30 local, where the noon offset is the right one even on a DST change day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

# (IANA zone, share of the cohort). Mostly US, a few others (one in the southern hemisphere).
ZONES: tuple[tuple[str, float], ...] = (
    ("America/New_York", 0.40),
    ("America/Chicago", 0.26),
    ("America/Denver", 0.06),
    ("America/Phoenix", 0.025),
    ("America/Los_Angeles", 0.18),
    ("America/Anchorage", 0.005),
    ("Pacific/Honolulu", 0.005),
    ("Europe/London", 0.04),
    ("Europe/Berlin", 0.015),
    ("Australia/Sydney", 0.01),
)
ZONE_NAMES: tuple[str, ...] = tuple(z for z, _ in ZONES)
ZONE_SHARES: tuple[float, ...] = tuple(s for _, s in ZONES)
HISTORY_DAYS = 800  # how far back the offset table reaches; older times use its first day
DAY = 86_400


@lru_cache(maxsize=8)
def _offsets(as_of_day: date) -> npt.NDArray[np.int64]:
    """Seconds east of UTC, shape (zones, HISTORY_DAYS + 2); column d is as_of_day - d days (d = -1..)."""
    table = np.empty((len(ZONE_NAMES), HISTORY_DAYS + 2), dtype=np.int64)
    for z, name in enumerate(ZONE_NAMES):
        tz = ZoneInfo(name)
        for col in range(HISTORY_DAYS + 2):
            local_noon = datetime.combine(as_of_day - timedelta(days=col - 1), time(12), tzinfo=tz)
            offset = local_noon.utcoffset()
            table[z, col] = int(offset.total_seconds()) if offset is not None else 0
    return table


def local_to_epoch(
    as_of: datetime,
    zone: npt.NDArray[np.intp],
    days_before: npt.NDArray[np.int64],
    seconds_of_day: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """UTC epoch seconds of local wall-clock times on the local dates ``as_of``'s UTC date - days_before.

    A time that would lie after ``as_of`` moves back by whole days, keeping its local time of day.
    """
    as_of_day = as_of.astimezone(UTC).date()
    midnight = int(datetime.combine(as_of_day, time(0), tzinfo=UTC).timestamp())
    col = np.clip(days_before + 1, 0, HISTORY_DAYS + 1)
    wall = midnight - days_before * DAY + seconds_of_day
    epoch = wall - _offsets(as_of_day)[zone, col]
    over = np.maximum(epoch - int(as_of.timestamp()), 0)
    return np.asarray(epoch - (over + DAY - 1) // DAY * DAY, dtype=np.int64)
