"""What a clinician's approval of a review item covers, for every place that lets an approved nudge through.

An approval covers the rules that asked for the clinician's review when the item was made, at the
escalation the item carried. Rules that only added a caution were not decided on: if one of them later
asks for review, the approval does not cover it; nor does it cover a new or different escalation
(a blood pressure that became a crisis, say). The serve, the context update, the clinician's own
re-check and scoped approvals in the build all judge by :class:`Approval`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nudge_engine.guardrails.decision import Outcome


def reviewed_rules(fired: Iterable[Mapping[str, Any]] | None) -> frozenset[str]:
    """The rules of an item's fired list (``{"rule", "action", ...}``) that asked for review, not the cautions."""
    return frozenset(str(f["rule"]) for f in fired or () if f.get("action") == Outcome.REVIEW.value)


@dataclass(frozen=True, slots=True)
class Approval:
    rules: frozenset[str]
    escalation: str | None = None

    @classmethod
    def of_item(cls, fired: Iterable[Mapping[str, Any]] | None, escalation: str | None) -> Approval:
        """The approval an approved item gives, from its fired rules and its escalation."""
        return cls(reviewed_rules(fired), escalation)

    def covers(self, review_rules: frozenset[str], escalation: str | None) -> bool:
        """Whether a verdict asking review for ``review_rules`` at ``escalation`` is within this approval."""
        return bool(self.rules) and review_rules <= self.rules and escalation in (None, self.escalation)


NOT_APPROVED = Approval(frozenset())
