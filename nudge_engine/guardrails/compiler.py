"""Compile a validated :class:`RuleSet` once into features, logic trees and target matchers.

Both evaluators run the same compiled rule set: the per-request evaluator reads features from one
patient context, the batch evaluator reads them from columns. ``CompiledRuleSet.features`` lists every
patient column the batch evaluator needs (see :mod:`nudge_engine.guardrails.columns`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from nudge_engine.domain.nudge import Nudge, guarded_fields
from nudge_engine.guardrails.features import (
    Age,
    AnyObservation,
    BmiSource,
    ConditionFeature,
    FactFeature,
    Feature,
    LatestObservation,
    MedicationFeature,
    ObservationMissing,
    PersistentObservation,
    ProcedureFeature,
    WeightGain,
)
from nudge_engine.guardrails.logic import AllOf, AnyOf, Flag, Node, NoneOf, Threshold, Tri
from nudge_engine.guardrails.pregnancy import PregnancyFeature
from nudge_engine.guardrails.ruleset import RuleSet
from nudge_engine.guardrails.schema import Criterion, Rule, Window
from nudge_engine.guardrails.targets import TargetMatcher
from nudge_engine.guardrails.timewindows import Span
from nudge_engine.guardrails.valuesets import CodeMatcher, compile_matcher


class Level:
    """Action severity: the decision is the maximum over fired rules (rules-spec §1.2)."""

    NONE, CAUTION, REVIEW, BLOCK = 0, 1, 2, 3
    OF_ACTION: Mapping[str, int] = {"caution": 1, "review": 2, "block": 3}
    NAMES: Mapping[int, str] = {1: "caution", 2: "review", 3: "block"}


class Escalation:
    NONE, URGENT_CLINICAL, CRISIS = 0, 1, 2
    OF_NAME: Mapping[str, int] = {"urgent_clinical": 1, "crisis": 2}
    NAMES: Mapping[int, str] = {1: "urgent_clinical", 2: "crisis"}


@dataclass(frozen=True)
class CompiledBranch:
    level: int
    target: TargetMatcher
    when: Node | None
    caution: str | None
    escalation: int
    escalate_when: Node | None


@dataclass(frozen=True)
class CompiledRule:
    id: str
    version: str
    branches: tuple[CompiledBranch, ...]
    features: tuple[Feature, ...] = ()  # every feature any branch reads (an error in one fails the rule closed)


@dataclass(frozen=True)
class CompiledRuleSet:
    version: str
    digest: str
    rules: tuple[CompiledRule, ...]
    features: Mapping[str, Feature] = field(repr=False)
    _targets: dict[tuple[Any, ...], tuple[tuple[CompiledRule, tuple[CompiledBranch, ...]], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def targeted(self, nudge: Nudge) -> tuple[tuple[CompiledRule, tuple[CompiledBranch, ...]], ...]:
        """The rules with a branch targeting this nudge, and those branches (cached per nudge shape)."""
        key = guarded_fields(nudge)
        found = self._targets.get(key)
        if found is None:
            found = tuple(
                (rule, branches) for rule in self.rules
                if (branches := tuple(b for b in rule.branches if b.target.matches(nudge)))
            )
            if len(self._targets) >= 4096:
                self._targets.clear()
            self._targets[key] = found
        return found


ON_MISSING = {"not_applicable": Tri.FALSE, "review": Tri.UNDEFINED, "fire": Tri.TRUE}


class _Compiler:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.features: dict[str, Feature] = {}
        self.matchers: dict[tuple[str, ...], CodeMatcher] = {}
        preg = ruleset.manifest.pregnancy
        self.pregnancy = PregnancyFeature(
            conditions=self.matcher(preg.condition_valuesets),
            end_conditions=self.matcher(preg.end_condition_valuesets),
            end_procedures=self.matcher(preg.end_procedure_valuesets),
            status_observation=self.matcher([preg.status_observation_valueset]),
            pregnant_value=preg.pregnant_value,
            not_pregnant_value=preg.not_pregnant_value,
            expiry=Span.parse(preg.expiry),
        )

    def matcher(self, ids: list[str]) -> CodeMatcher:
        key = tuple(sorted(ids))
        if key not in self.matchers:
            self.matchers[key] = compile_matcher(self.ruleset.valuesets, key, self.ruleset.products)
        return self.matchers[key]

    def feature(self, feature: Feature) -> Feature:
        return self.features.setdefault(feature.key, feature)

    def rule(self, rule: Rule) -> CompiledRule:
        missing = ON_MISSING[rule.on_missing]
        branches = tuple(
            CompiledBranch(
                level=Level.OF_ACTION[b.action],
                target=TargetMatcher.compile(b.target),
                when=self.node(b.when, missing) if b.when is not None else None,
                caution=b.caution,
                escalation=Escalation.OF_NAME[b.escalate.level] if b.escalate else Escalation.NONE,
                escalate_when=self.node(b.escalate.when, missing) if b.escalate and b.escalate.when else None,
            )
            for b in rule.branches
        )
        used: dict[str, Feature] = {}
        for b in branches:
            for node in (b.when, b.escalate_when):
                if node is not None:
                    used.update((f.key, f) for f in node.features())
        return CompiledRule(rule.id, rule.version, branches, tuple(used.values()))

    def node(self, crit: Criterion, missing: Tri) -> Node:
        if crit.all is not None:
            return AllOf(tuple(self.node(c, missing) for c in crit.all))
        if crit.any is not None:
            return AnyOf(tuple(self.node(c, missing) for c in crit.any))
        if crit.not_ is not None:
            return NoneOf(self.node(crit.not_, missing))
        if crit.pregnant:
            return Flag(self.feature(self.pregnancy))
        if crit.age is not None:
            a = crit.age
            threshold = a.value if a.value is not None else self.ruleset.manifest.parameters[str(a.parameter)]
            return Threshold(self.feature(Age()), a.op, float(threshold), Tri.UNDEFINED)
        return self.leaf(crit, missing)

    def leaf(self, crit: Criterion, missing: Tri) -> Node:
        if crit.condition is not None:
            c = crit.condition
            return Flag(self.feature(ConditionFeature(
                _key("condition", c), self.matcher(c.valuesets), c.status == "history",
                _window(c.onset), _window(c.recorded), c.on_missing_date,
            )))
        if crit.procedure is not None:
            p = crit.procedure
            return Flag(self.feature(ProcedureFeature(
                _key("procedure", p), self.matcher(p.valuesets), _window(p.performed), p.on_missing_date
            )))
        if crit.medication is not None:
            m = crit.medication
            washout = Span.parse(m.washout) if m.washout else None
            return Flag(self.feature(MedicationFeature(_key("medication", m), self.matcher(m.valuesets), washout)))
        if crit.obs is not None:
            o = crit.obs
            on_missing = missing if o.on_missing == "inherit" else ON_MISSING[o.on_missing]
            if o.select == "any":
                feature: Feature = AnyObservation(
                    _key("obs-any", o, exclude={"on_missing"}), self.matcher(o.valuesets), o.unit,
                    Span.parse(o.lookback), o.op, o.value,
                )
                return Threshold(self.feature(feature), "==", 1.0, on_missing)
            feature = LatestObservation(
                _key("obs-latest", o, include={"valuesets", "unit", "lookback", "project", "fallback"}),
                self.matcher(o.valuesets), o.unit, Span.parse(o.lookback), o.project, self.bmi(o.fallback),
            )
            return Threshold(self.feature(feature), o.op, o.value, on_missing)
        if crit.missing_obs is not None:
            mo = crit.missing_obs
            return Flag(self.feature(ObservationMissing(
                _key("obs-missing", mo), self.matcher(mo.valuesets), Span.parse(mo.lookback), self.bmi(mo.fallback)
            )))
        if crit.fact is not None:
            f = crit.fact
            values = frozenset(v.strip().lower() for v in f.values) if f.values is not None else None
            within = Span.parse(f.within) if f.within else None
            return Flag(self.feature(FactFeature(_key("fact", f), f.kind, values, within)))
        if crit.weight_gain is not None:
            w = crit.weight_gain
            return Flag(self.feature(WeightGain(
                _key("weight-gain", w), self.matcher(w.valuesets), w.unit, w.gain,
                Span.parse(w.latest_within), Span.parse(w.baseline),
            )))
        if crit.persistent_obs is not None:
            po = crit.persistent_obs
            return Flag(self.feature(PersistentObservation(
                _key("obs-persistent", po), self.matcher(po.valuesets), po.unit, Span.parse(po.lookback),
                po.op, po.value, Span.parse(po.min_span).days or 0,
            )))
        raise ValueError("criterion without a known key")  # the schema makes this unreachable

    def bmi(self, fallback: str | None) -> BmiSource | None:
        if fallback != "bmi_from_weight_height":
            return None
        return BmiSource(self.matcher(["body-weight"]), self.matcher(["body-height"]))


def _window(window: Window | None) -> tuple[Span | None, Span | None] | None:
    if window is None:
        return None
    return (Span.parse(window.min) if window.min else None, Span.parse(window.max) if window.max else None)


def _key(kind: str, model: BaseModel, *, include: set[str] | None = None, exclude: set[str] | None = None) -> str:
    data: Any = model.model_dump(mode="json", include=include, exclude=exclude)
    if isinstance(data, dict) and "valuesets" in data:
        data["valuesets"] = sorted(data["valuesets"])
    return f"{kind}:{json.dumps(data, sort_keys=True, separators=(',', ':'))}"


def compile_ruleset(ruleset: RuleSet) -> CompiledRuleSet:
    """Compile once; the result is immutable and safe to share between requests."""
    compiler = _Compiler(ruleset)
    rules = tuple(compiler.rule(r) for r in ruleset.rules)
    return CompiledRuleSet(ruleset.version, ruleset.digest, rules, dict(compiler.features))
