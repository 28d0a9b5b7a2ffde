"""Data-governance settings: tracking mode, retention windows, the small-cell threshold (``NUDGE_*``).

Kept beside the code that uses them until they join :class:`nudge_engine.config.Settings` (same
names, same environment variables), so that file stays the one settings class.

- ``NUDGE_TRACKING_MODE`` (``refuse``): events outside the tracking plan are refused (422) or, with
  ``quarantine``, set aside (202) and counted.
- ``NUDGE_TRACKING_PLAN`` (``nudge_engine/data/tracking_plan.yaml``): the tracking plan.
- ``NUDGE_RETENTION_MODE`` (``standard``): ``low`` shortens the windows; personalisation then works
  from the session and recent aggregates only.
- ``NUDGE_EVENT_RETENTION_DAYS`` (365; low: 14): older raw events are folded into aggregates and deleted.
- ``NUDGE_DECISION_RETENTION_DAYS`` (365; low: 14): build decision details and finished ready-queue rows.
- ``NUDGE_QUARANTINE_RETENTION_DAYS`` (30): refused and quarantined events.
- ``NUDGE_MIN_CELL_SIZE`` (11): aggregate figures drawn from fewer patients are suppressed.
- ``NUDGE_SESSION_WINDOW_MINUTES`` (120): how far back next-nudge reads the events of an app session.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nudge_engine.tracking.plan import DEFAULT_PLAN

MIN_EVENT_DAYS = 8  # the build counts caps over the patient's local week from raw deliveries


class TrackingMode(StrEnum):
    REFUSE = "refuse"
    QUARANTINE = "quarantine"


class RetentionMode(StrEnum):
    STANDARD = "standard"
    LOW = "low"


DEFAULT_DAYS = {RetentionMode.STANDARD: 365, RetentionMode.LOW: 14}


class DataSettings(BaseSettings):
    """How events are admitted, how long they are kept, and how small a published cell may be."""

    model_config = SettingsConfigDict(env_prefix="NUDGE_", extra="ignore")

    tracking_mode: TrackingMode = TrackingMode.REFUSE
    tracking_plan: Path = DEFAULT_PLAN
    retention_mode: RetentionMode = RetentionMode.STANDARD
    event_retention_days: int | None = Field(default=None, ge=MIN_EVENT_DAYS, le=3650)
    decision_retention_days: int | None = Field(default=None, ge=MIN_EVENT_DAYS, le=3650)
    quarantine_retention_days: int = Field(default=30, ge=1, le=3650)
    min_cell_size: int = Field(default=11, ge=1, le=1000)
    session_window_minutes: int = Field(default=120, ge=5, le=24 * 60)

    @property
    def event_window(self) -> timedelta:
        return timedelta(days=self.event_retention_days or DEFAULT_DAYS[self.retention_mode])

    @property
    def decision_window(self) -> timedelta:
        return timedelta(days=self.decision_retention_days or DEFAULT_DAYS[self.retention_mode])

    @property
    def quarantine_window(self) -> timedelta:
        return timedelta(days=self.quarantine_retention_days)

    @property
    def session_window(self) -> timedelta:
        return timedelta(minutes=self.session_window_minutes)

    @property
    def low_retention(self) -> bool:
        return self.retention_mode is RetentionMode.LOW
