"""Monitoring thresholds: environment variables with the prefix ``NUDGE_MONITOR_`` (safe defaults).

The composition root builds one :class:`MonitorSettings`; tests pass their own.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NUDGE_MONITOR_", extra="ignore", frozen=True)

    window_days: int = Field(7, ge=1, description="Length of the current window, ending now.")
    reference_days: int = Field(7, ge=1, description="Length of the reference window, just before the current one.")
    psi_bins: int = Field(10, ge=2)
    psi_warning: float = 0.10
    psi_alert: float = 0.25
    rule_rate_ratio: float = Field(2.0, gt=1.0, description="Block/review rate of a rule changed by this factor ...")
    rule_rate_min_change: float = Field(0.02, ge=0.0, description="... and by at least this much (share of patients).")
    review_backlog_max: int = 200
    review_overdue_max: int = 20
    time_to_decision_p90_hours: float = 24.0
    rate_drop_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="A serve/open/completion rate below this "
                                   "share of its reference value raises an alert.")
    starvation_days: int = 7
    starved_max_fraction: float = 0.10
    context_stale_hours: float = 720.0
    events_stale_hours: float = 24.0
    srm_alpha: float = 0.001
    harm_alpha: float = 0.05
    confidence: float = 0.95
    min_cell: int = Field(11, ge=1, description="Cells with fewer patients are suppressed in reports.")
