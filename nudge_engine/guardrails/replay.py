"""Compare two rule sets by replaying (patient, nudge, time) triples under both.

:func:`diff_rulesets` takes any iterable of :class:`ReplayPair`: today the CLI feeds it the example
cases of both rule sets (and, when given, FHIR bundles crossed with the cases' nudges); the build cycle
will feed it the stored recent decisions' contexts. It reports pairs newly blocked, newly allowed
(now deliverable, before review or block) and otherwise changed, and per rule how often it started or
stopped firing or changed action.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.decision import Decision, Outcome
from nudge_engine.guardrails.evaluate import decide


@dataclass(frozen=True)
class ReplayPair:
    label: str
    context: PatientContext
    nudge: Nudge
    at: datetime


@dataclass(frozen=True)
class PairChange:
    label: str
    nudge_id: str
    old: Decision
    new: Decision

    def as_json(self) -> dict[str, Any]:
        def brief(d: Decision) -> dict[str, Any]:
            return {"decision": d.decision.value, "fired": {f.rule: f.action for f in d.fired}}

        return {"pair": self.label, "nudge": self.nudge_id, "old": brief(self.old), "new": brief(self.new)}


@dataclass
class RuleSetDiff:
    old_version: str
    old_digest: str
    new_version: str
    new_digest: str
    pairs: int = 0
    newly_blocked: list[PairChange] = field(default_factory=list)
    newly_allowed: list[PairChange] = field(default_factory=list)
    changed: list[PairChange] = field(default_factory=list)
    started_firing: Counter[str] = field(default_factory=Counter)
    stopped_firing: Counter[str] = field(default_factory=Counter)
    action_changed: Counter[str] = field(default_factory=Counter)

    def as_json(self, sources: list[str]) -> dict[str, Any]:
        rules = sorted(set(self.started_firing) | set(self.stopped_firing) | set(self.action_changed))
        return {
            "old": {"version": self.old_version, "digest": self.old_digest},
            "new": {"version": self.new_version, "digest": self.new_digest},
            "replayed": {"pairs": self.pairs, "sources": sources},
            "newly_blocked": [c.as_json() for c in self.newly_blocked],
            "newly_allowed": [c.as_json() for c in self.newly_allowed],
            "changed": [c.as_json() for c in self.changed],
            "by_rule": {
                r: {
                    "started_firing": self.started_firing[r],
                    "stopped_firing": self.stopped_firing[r],
                    "action_changed": self.action_changed[r],
                }
                for r in rules
            },
        }


def diff_rulesets(old: CompiledRuleSet, new: CompiledRuleSet, pairs: Iterable[ReplayPair]) -> RuleSetDiff:
    result = RuleSetDiff(old.version, old.digest, new.version, new.digest)
    for pair in pairs:
        result.pairs += 1
        before = decide(pair.context, pair.nudge, old, pair.at)
        after = decide(pair.context, pair.nudge, new, pair.at)
        was = {f.rule: f.action for f in before.fired}
        now = {f.rule: f.action for f in after.fired}
        for rule in now.keys() - was.keys():
            result.started_firing[rule] += 1
        for rule in was.keys() - now.keys():
            result.stopped_firing[rule] += 1
        for rule in now.keys() & was.keys():
            if now[rule] != was[rule]:
                result.action_changed[rule] += 1
        change = PairChange(pair.label, pair.nudge.id, before, after)
        if after.decision is Outcome.BLOCK and before.decision is not Outcome.BLOCK:
            result.newly_blocked.append(change)
        elif after.decision is Outcome.DELIVER and before.decision is not Outcome.DELIVER:
            result.newly_allowed.append(change)
        elif after.decision is not before.decision or was != now:
            result.changed.append(change)
    return result
