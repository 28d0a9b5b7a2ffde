"""FHIR ``date``/``dateTime``/``instant`` strings into :class:`Moment`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from nudge_engine.domain.context import Moment

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


class BadTime(ValueError):
    """The string is not a FHIR date or dateTime."""


def parse_moment(value: object) -> Moment:
    """Parse a FHIR date or dateTime. Partial dates (YYYY, YYYY-MM) take the first day, date-only."""
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
        # FHIR requires a zone when a time is given; treat a missing one as UTC rather than reject.
        parsed = parsed.replace(tzinfo=UTC)
    return Moment(parsed.astimezone(UTC), date_only=False)


def parse_date(value: object) -> date:
    """Parse a FHIR ``date`` (birthDate)."""
    return parse_moment(value).day
