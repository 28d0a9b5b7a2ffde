"""The catalog file format: one pydantic model per YAML mapping, unknown fields are errors."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nudge_engine.domain.nudge import TAGS, Category, Intensity
from nudge_engine.personalization.limits import BurdenLimits

NUDGE_ID = r"^[a-z0-9][a-z0-9._-]{1,63}$"
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
LOCALE = r"^[a-z]{2}(-[A-Z]{2})?$"


class NudgeEntry(BaseModel):
    """One nudge: contract §6 fields plus what the build needs to target, pace and chain it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NUDGE_ID)
    category: Category
    intensity: Intensity = Intensity.NONE
    duration_min: int | None = Field(default=None, ge=1, le=600)
    tags: tuple[str, ...] = ()
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=2000)
    programme: str | None = Field(default=None, pattern=SLUG)
    target_segments: tuple[str, ...] = ()
    priority: int = Field(default=0, ge=0, le=10)
    cooldown_hours: int | None = Field(default=None, ge=0, le=24 * 90)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    locale: str | None = Field(default=None, pattern=LOCALE)
    follow_ups: tuple[str, ...] = ()

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(tags) - TAGS)
        if unknown:
            raise ValueError(f"unknown tag(s) {', '.join(unknown)} (see rules-spec §1.1)")
        if len(set(tags)) != len(tags):
            raise ValueError("duplicate tags")
        return tags

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2025-06-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NudgeEntry:
        if self.intensity is not Intensity.NONE and self.category is not Category.EXERCISE:
            raise ValueError(f"intensity '{self.intensity}' is only meaningful for exercise nudges")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.id in self.follow_ups:
            raise ValueError("a nudge cannot follow up itself")
        return self


class CatalogHeader(BaseModel):
    """The catalog document; nudges are validated one by one so every error names its nudge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=32)
    locale: str = Field(default="en-US", pattern=LOCALE)
    burden: BurdenLimits = Field(default_factory=BurdenLimits)
    nudges: list[object] = Field(min_length=1)
