"""Example cases kept beside each rule (``<family>/<RULE-ID>/cases.yaml``), gatekeeper style.

A case is a small patient profile, a nudge and what the rule must do: ``expect: fire`` (with the
``action`` and, optionally, the ``escalation``) or ``expect: no_fire``. Profiles use the short code
system names of the clinical scenarios (ICD-10-CM, SNOMED-CT, RxNorm, ATC, LOINC, ICD-10-PCS). The whole
rule set is evaluated, so a case also proves the rule plays well with the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import ValidationError, field_validator

from nudge_engine.domain.codes import CodeSystem, normalise_icd10
from nudge_engine.domain.context import (
    ClinicalFact,
    Coding,
    Condition,
    Medication,
    Moment,
    Observation,
    PatientContext,
    Procedure,
    Quantity,
)
from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.domain.nudge import TAGS, Category, Intensity, Nudge
from nudge_engine.fhir.timeparse import parse_moment
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.schema import EscalationLevel, FactKindName, Strict

DEFAULT_AS_OF = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SYSTEMS = {
    "ICD-10-CM": CodeSystem.ICD10CM.value,
    "ICD-10-PCS": CodeSystem.ICD10PCS.value,
    "SNOMED-CT": CodeSystem.SNOMED.value,
    "RxNorm": CodeSystem.RXNORM.value,
    "ATC": CodeSystem.ATC.value,
    "LOINC": CodeSystem.LOINC.value,
}
SystemName = Literal["ICD-10-CM", "ICD-10-PCS", "SNOMED-CT", "RxNorm", "ATC", "LOINC"]


class CaseCoding(Strict):
    system: SystemName
    code: str


class CaseCondition(CaseCoding):
    status: str = "active"
    verification: str = "confirmed"
    onset: str | None = None
    abatement: str | None = None
    recorded: str | None = None


class CaseProcedure(CaseCoding):
    performed: str | None = None
    status: str = "completed"


class CaseMedication(Strict):
    rxnorm: str | None = None
    atc: str | None = None
    status: str = "active"
    start: str | None = None
    end: str | None = None


class CaseObservation(Strict):
    loinc: str
    value: float | None = None
    unit: str | None = None
    value_code: CaseCoding | None = None
    effective: str
    status: str = "final"


class CaseFact(Strict):
    kind: FactKindName
    value: str | None = None
    quantity: float | None = None
    effective: str | None = None


class CasePatient(Strict):
    age: int | None
    sex: str | None = None
    conditions: tuple[CaseCondition, ...] = ()
    procedures: tuple[CaseProcedure, ...] = ()
    medications: tuple[CaseMedication, ...] = ()
    observations: tuple[CaseObservation, ...] = ()
    facts: tuple[CaseFact, ...] = ()


class CaseNudge(Strict):
    category: Category
    intensity: Intensity = Intensity.NONE
    duration_min: int | None = None
    tags: tuple[str, ...] = ()

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(tags) - TAGS)
        if unknown:
            raise ValueError(f"unknown tag(s): {', '.join(unknown)}")
        return tags


class Case(Strict):
    name: str
    expect: Literal["fire", "no_fire"]
    action: Literal["block", "review", "caution"] | None = None
    escalation: EscalationLevel | None = None
    at: datetime | None = None
    patient: CasePatient
    nudge: CaseNudge


class CaseFile(Strict):
    cases: list[Case]


@dataclass(frozen=True)
class RuleCases:
    rule_id: str
    path: Path
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    case: Case
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def load_cases(root: Path, rule_ids: set[str]) -> list[RuleCases]:
    """Every rule's cases; a rule without a must-fire and a must-not-fire case is a problem."""
    problems: list[str] = []
    found: list[RuleCases] = []
    for rule_file in sorted(root.rglob("rule.yaml")):
        rid = rule_file.parent.name
        if rid not in rule_ids:
            continue
        path = rule_file.parent / "cases.yaml"
        rel = path.relative_to(root)
        if not path.is_file():
            problems.append(f"{rel}: {rid}: field 'cases': missing example cases")
            continue
        try:
            parsed = CaseFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            problems.append(f"{rel}: {rid}: not valid YAML")
            continue
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{rel}: {rid}: field '{loc}': {err['msg']}")
            continue
        kinds = {c.expect for c in parsed.cases}
        for kind in ("fire", "no_fire"):
            if kind not in kinds:
                problems.append(f"{rel}: {rid}: field 'cases': needs at least one '{kind}' case")
        for i, case in enumerate(parsed.cases):
            if case.expect == "fire" and case.action is None:
                problems.append(f"{rel}: {rid}: field 'cases[{i}].action': a 'fire' case names the action")
        found.append(RuleCases(rid, path, tuple(parsed.cases)))
    if problems:
        raise InvalidRuleSet(problems)
    return found


def run_cases(ruleset: CompiledRuleSet, rule_cases: list[RuleCases]) -> Iterator[CaseResult]:
    for rc in rule_cases:
        for case in rc.cases:
            yield CaseResult(rc.rule_id, case, tuple(check_case(ruleset, rc.rule_id, case)))


def check_case(ruleset: CompiledRuleSet, rule_id: str, case: Case) -> Iterator[str]:
    at = case.at or DEFAULT_AS_OF
    decision = decide(case_context(case.patient, at), case_nudge(case.nudge), ruleset, at)
    fired = {f.rule: f for f in decision.fired}
    mine = fired.get(rule_id)
    if case.expect == "no_fire":
        if mine is not None:
            yield f"{rule_id} fired ({mine.action}) but must not: {', '.join(mine.evidence)}"
        return
    if mine is None:
        yield f"{rule_id} did not fire (fired: {', '.join(sorted(fired)) or 'none'})"
        return
    if mine.action != case.action:
        yield f"{rule_id} action {mine.action}, expected {case.action}"
    if case.escalation is not None and decision.escalation != case.escalation:
        yield f"escalation {decision.escalation}, expected {case.escalation}"
    if "escalation" in case.model_fields_set and case.escalation is None and decision.escalation is not None:
        yield f"escalation {decision.escalation}, expected none"


def birth_date_for(age: int, at: datetime) -> date:
    """Half a year before the birthday that makes ``age`` exact at ``at`` (as the scenarios do)."""
    d = at.date()
    return date(d.year - age, d.month, 1) - timedelta(days=182)


def _moment(text: str | None) -> Moment | None:
    return parse_moment(text) if text else None


def _coding(c: CaseCoding) -> Coding:
    system = SYSTEMS[c.system]
    return Coding(system, normalise_icd10(c.code) if system == CodeSystem.ICD10CM else c.code)


def case_context(p: CasePatient, at: datetime) -> PatientContext:
    """The PatientContext a case profile describes."""
    meds = []
    for m in p.medications:
        codings = []
        if m.rxnorm:
            codings.append(Coding(CodeSystem.RXNORM.value, m.rxnorm))
        if m.atc:
            codings.append(Coding(CodeSystem.ATC.value, m.atc))
        meds.append(Medication(tuple(codings), m.status, _moment(m.start), _moment(m.end)))
    observations = [
        Observation(
            (Coding(CodeSystem.LOINC.value, o.loinc),),
            o.status,
            _moment(o.effective),
            Quantity(o.value, o.unit) if o.value is not None else None,
            _coding(o.value_code) if o.value_code else None,
        )
        for o in p.observations
    ]
    return PatientContext(
        birth_date=birth_date_for(p.age, at) if p.age is not None else None,
        sex=p.sex,
        conditions=tuple(
            Condition((_coding(c),), c.status, c.verification, _moment(c.onset), _moment(c.abatement),
                      _moment(c.recorded))
            for c in p.conditions
        ),
        procedures=tuple(Procedure((_coding(x),), x.status, _moment(x.performed)) for x in p.procedures),
        medications=tuple(meds),
        observations=tuple(observations),
        facts=tuple(
            ClinicalFact(f.kind, _moment(f.effective), f.value,
                         Quantity(f.quantity) if f.quantity is not None else None)
            for f in p.facts
        ),
    )


def case_nudge(n: CaseNudge) -> Nudge:
    return Nudge(id="case", category=n.category, intensity=n.intensity, duration_min=n.duration_min,
                 tags=frozenset(n.tags))
