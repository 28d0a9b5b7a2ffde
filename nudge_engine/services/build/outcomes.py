"""What the planning step decided for each patient, in the shape the writer stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ChosenNudge:
    nudge_id: str
    score: float
    propensity: float | None = None
    components: dict[str, Any] = field(default_factory=dict)  # score components, weights, replay context
    caution: tuple[str, ...] = ()
    fired: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class FlaggedNudge:
    """A candidate a guardrail sent to review or blocked, with each fired rule and its evidence."""

    nudge_id: str
    fired: tuple[dict[str, Any], ...]  # {"rule", "action", "evidence"}
    escalation: str | None = None
    score: float | None = None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(sorted({str(f["rule"]) for f in self.fired}))


@dataclass(frozen=True, slots=True)
class PatientOutcome:
    patient_id: str
    context_version: int
    chosen: tuple[ChosenNudge, ...] = ()
    review: tuple[FlaggedNudge, ...] = ()
    blocked: tuple[FlaggedNudge, ...] = ()
    dropped: dict[str, list[str]] = field(default_factory=dict)
    segments: tuple[str, ...] = ()
    experiments: dict[str, str] = field(default_factory=dict)  # experiment id -> arm
    held_out: bool = False  # a holdout: only safety-relevant nudges are made ready
    withheld: tuple[str, ...] = ()  # what a held-out patient would have got
    stage: dict[str, Any] | None = None  # programme, version and stage, when enrolled in a programme
    model_version: str | None = None

    @property
    def outcome(self) -> str:
        if self.chosen:
            return "ready"
        if self.review:
            return "review"
        if self.blocked:
            return "blocked"
        return "nothing"

    @property
    def escalation(self) -> str | None:
        levels = [f.escalation for f in (*self.review, *self.blocked) if f.escalation]
        return "crisis" if "crisis" in levels else (levels[0] if levels else None)
