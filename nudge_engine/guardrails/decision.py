"""A guardrail decision for one patient and one nudge, and its contract §6 JSON."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    DELIVER = "deliver"
    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: str
    action: str  # block | review | caution
    evidence: tuple[str, ...]
    caution: tuple[str, ...] = ()
    failed: bool = False  # fired because evaluation failed or a value was undefined (fail closed)


@dataclass(frozen=True, slots=True)
class Decision:
    decision: Outcome
    caution: tuple[str, ...]
    escalation: str | None
    fired: tuple[FiredRule, ...]
    ruleset_version: str
    ruleset_digest: str

    @property
    def fired_rules(self) -> frozenset[str]:
        return frozenset(f.rule for f in self.fired)

    @property
    def review_rules(self) -> frozenset[str]:
        """The fired rules that ask for a clinician's review (not those that block or only caution)."""
        return frozenset(f.rule for f in self.fired if f.action == Outcome.REVIEW.value)

    def fired_entries(self) -> list[dict[str, Any]]:
        """Each fired rule with its action, evidence and any caution text, as decisions and review items store them."""
        out: list[dict[str, Any]] = []
        for f in self.fired:
            entry: dict[str, Any] = {"rule": f.rule, "action": f.action, "evidence": list(f.evidence)}
            if f.caution:
                entry["caution"] = list(f.caution)
            out.append(entry)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "caution": list(self.caution),
            "escalation": self.escalation,
            "fired": [{"rule": f.rule, "action": f.action, "evidence": list(f.evidence)} for f in self.fired],
            "ruleset": {"version": self.ruleset_version, "digest": self.ruleset_digest},
        }
