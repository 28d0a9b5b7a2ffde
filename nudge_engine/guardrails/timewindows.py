"""Counting time as rules-spec §0.1 says.

Day windows count whole UTC calendar days between the fact and ``as_of`` (a date-only value is that
date). Hour and minute windows compare instants exactly; a date-only value stands for 23:59:59Z of its
date. Facts dated after ``as_of`` are ignored. Both ends of a window are inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nudge_engine.domain.context import Moment
from nudge_engine.guardrails.schema import DURATION


@dataclass(frozen=True, slots=True)
class Span:
    """A parsed duration: whole days (calendar counting) or seconds (instant counting)."""

    days: int | None = None
    seconds: int | None = None

    @classmethod
    def parse(cls, text: str) -> Span:
        match = DURATION.match(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r}")
        days, hours, minutes = match.groups()
        if days is not None:
            return cls(days=int(days))
        if hours is not None:
            return cls(seconds=int(hours) * 3600)
        return cls(seconds=int(minutes) * 60)

    def iso(self) -> str:
        if self.days is not None:
            return f"P{self.days}D"
        seconds = self.seconds or 0
        return f"PT{seconds // 3600}H" if seconds % 3600 == 0 else f"PT{seconds // 60}M"


def utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    return at.astimezone(UTC)


def is_after(moment: Moment, at: datetime) -> bool:
    """True when the fact is dated after ``as_of`` (date-only values compare by date)."""
    if moment.date_only:
        return moment.day > at.date()
    return moment.at > at


def age_in_days(moment: Moment, at: datetime) -> int:
    return (at.date() - moment.day).days


def age_in_seconds(moment: Moment, at: datetime) -> float:
    return (at - moment.instant).total_seconds()


def within(moment: Moment, at: datetime, low: Span | None, high: Span | None) -> bool:
    """Whether a fact dated ``moment`` lies in [low, high] before ``at`` (``at`` in UTC)."""
    if is_after(moment, at):
        return False
    for bound, is_low in ((low, True), (high, False)):
        if bound is None:
            continue
        if bound.days is not None:
            age: float = age_in_days(moment, at)
            limit: float = bound.days
        else:
            age = age_in_seconds(moment, at)
            if age < 0:
                return False
            limit = bound.seconds or 0
        if (is_low and age < limit) or (not is_low and age > limit):
            return False
    return True


def still_running(end: Moment, at: datetime, washout: Span | None) -> bool:
    """A medication that ended at ``end`` still counts at ``at`` given its wash-out (inclusive)."""
    if washout is None:
        return is_after(end, at) or (end.instant >= at)
    if washout.days is not None:
        return age_in_days(end, at) <= washout.days
    return age_in_seconds(end, at) <= (washout.seconds or 0)
