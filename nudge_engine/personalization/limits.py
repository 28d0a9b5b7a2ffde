"""Burden limits: how many nudges a patient may get per local day and week, overall and per category."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nudge_engine.domain.nudge import Category


class CategoryCaps(BaseModel):
    """Caps for one category; ``None`` falls back to the catalog-wide category caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_day: int | None = Field(default=None, ge=0)
    per_week: int | None = Field(default=None, ge=0)


class BurdenLimits(BaseModel):
    """Frequency caps, counted in the patient's local calendar (the week starts on Monday)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_day: int = Field(default=2, ge=0)
    max_per_week: int = Field(default=7, ge=0)
    category_max_per_day: int = Field(default=1, ge=0)
    category_max_per_week: int = Field(default=3, ge=0)
    category_caps: dict[Category, CategoryCaps] = Field(default_factory=dict)
    default_cooldown_hours: int = Field(default=72, ge=0, le=24 * 90)
    # A ready nudge whose earliest send time (end of quiet hours, end of a snooze) lies further
    # ahead than this is dropped instead of queued.
    horizon_hours: int = Field(default=24, ge=1, le=24 * 14)

    def category_day_cap(self, category: Category) -> int:
        caps = self.category_caps.get(category)
        return caps.per_day if caps and caps.per_day is not None else self.category_max_per_day

    def category_week_cap(self, category: Category) -> int:
        caps = self.category_caps.get(category)
        return caps.per_week if caps and caps.per_week is not None else self.category_max_per_week
