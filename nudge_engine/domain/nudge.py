"""Nudges and their controlled vocabulary (contract §6, rules-spec §1.1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache


class Category(StrEnum):
    EXERCISE = "exercise"
    DIET = "diet"
    FASTING = "fasting"
    WEIGHT = "weight"
    HYDRATION = "hydration"
    ALCOHOL = "alcohol"
    HEAT_THERAPY = "heat_therapy"
    MEDICATION = "medication"
    SLEEP = "sleep"
    STRESS = "stress"
    MENTAL_HEALTH = "mental_health"
    EDUCATION = "education"
    ONBOARDING = "onboarding"


class Intensity(StrEnum):
    NONE = "none"
    LIGHT = "light"
    MODERATE = "moderate"
    VIGOROUS = "vigorous"


EXERCISE_TAGS = frozenset(
    {
        "aerobic", "resistance", "heavy_lifting", "valsalva_risk", "isometric", "high_impact", "jumping",
        "head_down", "contact_sport", "fall_risk", "scuba", "skydiving", "hot_yoga", "high_altitude",
        "supine", "upper_body_push_pull", "spinal_flexion_loaded", "twisting", "calorie_burn",
    }
)
DIET_TAGS = frozenset(
    {
        "calorie_counting", "calorie_deficit", "weight_loss_goal", "weigh_in", "intermittent_fasting",
        "extended_fast", "meal_skipping", "diet_pill", "high_protein", "potassium_rich", "salt_substitute",
        "low_sodium", "vitamin_k_rich", "vitamin_k_supplement", "large_dietary_change", "grapefruit",
        "alcohol_containing",
    }
)
OTHER_TAGS = frozenset(
    {
        "fluid_increase", "alcohol_permissive", "alcohol_reduction", "sauna", "hot_tub", "adherence",
        "stop_medication", "skip_dose", "dose_change", "replace_with_supplement", "sleep_restriction",
        "sleep_hygiene",
    }
)
TAGS: frozenset[str] = EXERCISE_TAGS | DIET_TAGS | OTHER_TAGS


@dataclass(frozen=True, slots=True)
class Nudge:
    """What the guardrails and the ranking need to know about one nudge."""

    id: str
    category: Category
    intensity: Intensity = Intensity.NONE
    duration_min: int | None = None
    tags: frozenset[str] = frozenset()
    title: str = ""
    body: str = ""


def guarded_fields(nudge: Nudge) -> tuple[Category, Intensity, int | None, frozenset[str]]:
    """What the guardrails read of ``nudge``: its category, intensity, duration and tags (no rule reads the
    title or body). Nudges alike in these are decided alike."""
    return nudge.category, nudge.intensity, nudge.duration_min, nudge.tags


@lru_cache(maxsize=4096)
def guarded_digest(nudge: Nudge) -> str:
    """A short digest of :func:`guarded_fields`.

    A queued nudge carries the digest of the content it was decided on; where the catalog now says
    something else about it, the serve decides it again before showing it. Copy edits (title, body)
    leave it unchanged."""
    category, intensity, duration_min, tags = guarded_fields(nudge)
    parts = (category.value, intensity.value, str(duration_min), ",".join(sorted(tags)))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
