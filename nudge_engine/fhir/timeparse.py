"""FHIR ``date``/``dateTime``/``instant`` strings into :class:`Moment`."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, tzinfo

from nudge_engine.domain.context import Moment

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


class BadTime(ValueError):
    """The string is not a FHIR date or dateTime."""


def parse_moment(value: object, *, naive_zone: tzinfo | None = None) -> Moment:
    """Parse a FHIR date or dateTime. Partial dates (YYYY, YYYY-MM) take the first day, date-only.

    FHIR requires a UTC offset whenever a time is given, so a time without one is refused, unless the
    caller knows the zone the source writes its times in (``naive_zone``: Synthea's CSV writes UTC).
    """
    if not isinstance(value, str) or not value:
        raise BadTime(f"expected a FHIR date or dateTime string, got {type(value).__name__}")
    text = value.strip()
    partial = _PARTIAL.match(text)
    if partial:
        year, month = int(partial.group(1)), int(partial.group(2) or 1)
        try:
            return Moment.of_date(date(year, month, 1))
        except ValueError as exc:
            raise BadTime(f"not a valid date: {text!r}") from exc
    if len(text) == 10:
        try:
            return Moment.of_date(date.fromisoformat(text))
        except ValueError as exc:
            raise BadTime(f"not a valid date: {text!r}") from exc
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadTime(f"not a valid dateTime: {text!r}") from exc
    if parsed.tzinfo is None:
        if naive_zone is None:
            raise BadTime(f"a time needs a UTC offset (Z or +hh:mm): {text!r}")
        parsed = parsed.replace(tzinfo=naive_zone)
    try:
        return Moment(parsed.astimezone(UTC), date_only=False)
    except OverflowError:
        raise BadTime(f"out of range when moved to UTC: {text!r}") from None


def parse_date(value: object) -> date:
    """Parse a FHIR ``date`` (birthDate)."""
    return parse_moment(value).day


def parse_latest_date(value: object) -> date:
    """The last day a FHIR ``date`` can mean: YYYY is 31 December, YYYY-MM the month's last day.

    A year-only birthDate so gives the youngest age the patient can have (minimum-age rules fail closed).
    """
    day = parse_date(value)
    partial = _PARTIAL.match(str(value).strip())
    if partial is None:
        return day
    month = int(partial.group(2) or 12)
    return date(day.year, month, calendar.monthrange(day.year, month)[1])
