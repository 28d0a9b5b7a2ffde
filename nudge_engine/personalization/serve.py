"""Serve-time burden check for one patient and one ready nudge (the API calls this on every serve).

The same rules as the batch build (:mod:`candidates`), re-checked at the moment of serving: the
build may have run hours earlier, and deliveries since then count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.calendar import local_midnight, parse_hhmm, zone
from nudge_engine.personalization.candidates import DropReason
from nudge_engine.personalization.catalog import Catalog


@dataclass(frozen=True, slots=True)
class Delivery:
    """One past delivery of a nudge to this patient."""

    at: datetime
    nudge_id: str
    category: Category | None  # None: a nudge no longer in the catalog (it still counts for the overall caps)


@dataclass(frozen=True, slots=True)
class ServePrefs:
    """The patient's burden preferences (``patient_preferences``) and time zone."""

    tz: str = "UTC"
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    snoozed_until: datetime | None = None
    opted_out_all: bool = False
    opted_out_categories: Collection[Category] = field(default_factory=frozenset)
    max_per_day: int | None = None
    max_per_week: int | None = None
    suppressed_nudges: Collection[str] = field(default_factory=frozenset)  # "not right for me"


def serve_time_check(
    nudge_id: str,
    *,
    catalog: Catalog,
    prefs: ServePrefs,
    deliveries: Sequence[Delivery],
    now: datetime,
) -> DropReason | None:
    """``None`` when ``nudge_id`` may be shown now, else the reason it may not (same precedence as the build)."""
    i = catalog.index.get(nudge_id)
    now_s = now.timestamp()
    if i is None or not (catalog.valid_from_s[i] <= now_s < catalog.valid_until_s[i]):
        return DropReason.NOT_ELIGIBLE
    entry = catalog.entries[i]
    if prefs.opted_out_all or entry.category in prefs.opted_out_categories or nudge_id in prefs.suppressed_nudges:
        return DropReason.OPTED_OUT
    cooldown = timedelta(seconds=int(catalog.cooldown_s[i]))
    # No upper bound here nor in the caps: a concurrent serve stamped a moment after this one's clock still counts.
    if any(d.nudge_id == nudge_id and now - cooldown < d.at for d in deliveries):
        return DropReason.COOLDOWN
    if _capped(entry.category, catalog, prefs, deliveries, now):
        return DropReason.CAPPED
    if prefs.snoozed_until is not None and prefs.snoozed_until > now:
        return DropReason.SNOOZED
    local = now.astimezone(zone(prefs.tz))
    if _quiet(local.hour * 60 + local.minute, parse_hhmm(prefs.quiet_start), parse_hhmm(prefs.quiet_end)):
        return DropReason.QUIET_HOURS
    return None


def _quiet(minute: int, start: int, end: int) -> bool:
    """``calendar.in_quiet`` for one minute (its numpy form costs more than the rest of the check)."""
    return start <= minute < end if start <= end else (minute >= start or minute < end)


def _capped(
    category: Category, catalog: Catalog, prefs: ServePrefs, deliveries: Sequence[Delivery], now: datetime
) -> bool:
    limits = catalog.burden
    tz = zone(prefs.tz)
    today = now.astimezone(tz).date()
    day_start = local_midnight(today, tz)
    week_start = local_midnight(today - timedelta(days=today.weekday()), tz)
    past = [(d.at.timestamp(), d) for d in deliveries]
    day = [d for at, d in past if day_start <= at]
    week = [d for at, d in past if week_start <= at]
    max_day = limits.max_per_day if prefs.max_per_day is None else min(prefs.max_per_day, limits.max_per_day)
    max_week = limits.max_per_week if prefs.max_per_week is None else min(prefs.max_per_week, limits.max_per_week)
    return (
        len(day) >= max_day
        or len(week) >= max_week
        or sum(d.category == category for d in day) >= limits.category_day_cap(category)
        or sum(d.category == category for d in week) >= limits.category_week_cap(category)
    )
