"""Patient features: what a rule may ask of one patient's record at one time (rules-spec §1.3).

A :class:`Feature` reads a :class:`PatientContext` at ``as_of`` and gives a :class:`Reading`: a number
(booleans are 1.0/0.0; a missing observation is NaN), whether the value is undefined (fail closed), and
evidence strings for the explanation. Features with equal ``key`` are the same column in the batch
evaluator and are read once per patient by the per-request evaluator.
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding, Condition, Medication, Moment, Observation, PatientContext
from nudge_engine.guardrails import units
from nudge_engine.guardrails.timewindows import Span, age_in_days, is_after, still_running, within
from nudge_engine.guardrails.valuesets import CodeMatcher

ACTIVE_STATUSES = frozenset({"active", "recurrence", "relapse"})
HISTORY_STATUSES = ACTIVE_STATUSES | {"remission", "resolved", "inactive"}
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
MEDICATION_NEVER = frozenset({"entered-in-error", "not-taken", "cancelled", "draft", "intended"})
PROCEDURE_NEVER = frozenset({"not-done", "entered-in-error", "preparation"})
MISSING = math.nan


class PatientView:
    """A patient context with look-ups built once and shared by every feature read for it."""

    __slots__ = ("_by_loinc", "conditions", "ctx", "facts", "medications", "procedures")

    def __init__(self, ctx: PatientContext) -> None:
        self.ctx = ctx
        self.conditions = ctx.conditions
        self.procedures = ctx.procedures
        self.medications = ctx.medications
        self.facts = ctx.facts
        self._by_loinc: dict[str, list[tuple[Moment, Observation, Coding]]] | None = None

    def age_at(self, at: datetime) -> int | None:
        return self.ctx.age_at(at)

    @property
    def observations(self) -> tuple[Observation, ...]:
        return self.ctx.observations

    def by_loinc(self) -> dict[str, list[tuple[Moment, Observation, Coding]]]:
        """Final/amended observations with an effective time, by LOINC code, oldest first."""
        if self._by_loinc is None:
            index: dict[str, list[tuple[Moment, Observation, Coding]]] = {}
            for obs in self.ctx.observations:
                if obs.status not in FINAL_OBSERVATION or obs.effective is None:
                    continue
                for coding in obs.codings:
                    if coding.system == CodeSystem.LOINC:
                        index.setdefault(coding.code, []).append((obs.effective, obs, coding))
                        break
            for items in index.values():
                items.sort(key=lambda item: item[0].instant)
            self._by_loinc = index
        return self._by_loinc


@dataclass(frozen=True, slots=True)
class Reading:
    value: float
    undefined: bool = False
    evidence: tuple[str, ...] = ()

    @property
    def missing(self) -> bool:
        return math.isnan(self.value)


TRUE_READING = Reading(1.0)
FALSE_READING = Reading(0.0)


def evidence_of(coding: Coding, moment: Moment | None = None) -> str:
    return f"{coding.system}|{coding.code}" + (f"@{moment.iso()}" if moment is not None else "")


def number(value: float) -> str:
    return f"{value:g}"


class Feature(ABC):
    """One patient-level quantity; ``key`` identifies it across rules."""

    key: str

    @abstractmethod
    def read(self, ctx: PatientView, at: datetime) -> Reading: ...

    @abstractmethod
    def describe(self) -> str: ...


# --- conditions -------------------------------------------------------------------------------------


def condition_counts(cond: Condition, at: datetime, *, history: bool) -> bool:
    """Status test: active (§1.3) or, where history counts (§0.2), any non-refuted status."""
    if cond.verification_status in EXCLUDED_VERIFICATION:
        return False
    status = cond.clinical_status
    if history:
        return status is None or status in HISTORY_STATUSES
    if status is not None and status not in ACTIVE_STATUSES:
        return False
    return cond.abatement is None or is_after(cond.abatement, at)


def _later(a: Moment | None, b: Moment | None) -> Moment | None:
    if a is None or b is None:
        return a or b
    return a if a.instant >= b.instant else b


@dataclass(frozen=True)
class ConditionFeature(Feature):
    key: str
    matcher: CodeMatcher
    history: bool
    onset: tuple[Span | None, Span | None] | None
    recorded: tuple[Span | None, Span | None] | None
    on_missing_date: str

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        evidence: list[str] = []
        undefined = False
        for cond in ctx.conditions:
            coding = self.matcher.matches(cond.codings)
            if coding is None or not condition_counts(cond, at, history=self.history):
                continue
            dated = cond.onset or cond.recorded
            if dated is not None and is_after(dated, at):
                continue  # not yet known at as_of
            window = self.onset or self.recorded
            if window is None:
                evidence.append(evidence_of(coding, cond.onset))
                continue
            moment = cond.onset if self.onset is not None else _later(cond.onset, cond.recorded)
            if moment is None:
                if self.on_missing_date == "match":
                    evidence.append(evidence_of(coding) + "@date-unknown")
                elif self.on_missing_date == "undefined":
                    undefined = True
                continue
            if within(moment, at, window[0], window[1]):
                evidence.append(evidence_of(coding, moment))
        if evidence:
            return Reading(1.0, evidence=tuple(evidence))
        if undefined:
            return Reading(0.0, undefined=True, evidence=(f"date unknown for {self.describe()}",))
        return FALSE_READING

    def describe(self) -> str:
        return f"{'history of' if self.history else 'active'} condition in {'+'.join(self.matcher.ids)}"


# --- procedures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcedureFeature(Feature):
    key: str
    matcher: CodeMatcher
    performed: tuple[Span | None, Span | None] | None
    on_missing_date: str

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        evidence: list[str] = []
        undefined = False
        for proc in ctx.procedures:
            if proc.status in PROCEDURE_NEVER:
                continue
            coding = self.matcher.matches(proc.codings)
            if coding is None:
                continue
            when = proc.performed
            if when is None:
                if self.performed is None or self.on_missing_date == "match":
                    evidence.append(evidence_of(coding) + "@date-unknown")
                elif self.on_missing_date == "undefined":
                    undefined = True
                continue
            if is_after(when, at):
                continue
            if self.performed is None or within(when, at, self.performed[0], self.performed[1]):
                evidence.append(evidence_of(coding, when))
        if evidence:
            return Reading(1.0, evidence=tuple(evidence))
        if undefined:
            return Reading(0.0, undefined=True, evidence=(f"date unknown for {self.describe()}",))
        return FALSE_READING

    def describe(self) -> str:
        return f"procedure in {'+'.join(self.matcher.ids)}"


# --- medications ------------------------------------------------------------------------------------


def medication_in_use(med: Medication, at: datetime, washout: Span | None) -> bool:
    """Active (status active), or ended no longer ago than the wash-out (rules-spec §1.3)."""
    if med.status in MEDICATION_NEVER:
        return False
    if med.start is not None and is_after(med.start, at):
        return False
    if med.status == "active":
        return True
    return med.end is not None and still_running(med.end, at, washout)


@dataclass(frozen=True)
class MedicationFeature(Feature):
    key: str
    matcher: CodeMatcher
    washout: Span | None

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        evidence: list[str] = []
        for med in ctx.medications:
            coding = self.matcher.matches(med.codings)
            if coding is not None and medication_in_use(med, at, self.washout):
                suffix = "" if med.status == "active" or med.end is None else f"(ended {med.end.iso()})"
                evidence.append(evidence_of(coding) + suffix)
        return Reading(1.0, evidence=tuple(evidence)) if evidence else FALSE_READING

    def describe(self) -> str:
        return f"medication in {'+'.join(self.matcher.ids)}"


# --- observations -----------------------------------------------------------------------------------


def observations_in(
    ctx: PatientView, loinc: frozenset[str], at: datetime, lookback: Span | None
) -> list[tuple[Moment, Observation, Coding]]:
    """Final/amended observations with a code in ``loinc`` inside the look-back, oldest first."""
    index = ctx.by_loinc()
    found: list[tuple[Moment, Observation, Coding]] = []
    for code in loinc:
        items = index.get(code)
        if items:
            found.extend(item for item in items if within(item[0], at, None, lookback))
    if len(loinc) > 1:
        found.sort(key=lambda item: item[0].instant)
    return found


def quantity_evidence(coding: Coding, obs: Observation) -> str:
    q = obs.quantity
    unit = f" {q.unit}" if q is not None and q.unit else ""
    value = number(q.value) if q is not None else "?"
    return f"{coding.system}|{coding.code}={value}{unit}"


@dataclass(frozen=True)
class BmiSource:
    """Weight and height to compute a BMI when no BMI observation is on file (WT-02)."""

    weight: CodeMatcher
    height: CodeMatcher

    def compute(self, ctx: PatientView, at: datetime, lookback: Span) -> Reading:
        weights = [w for w in observations_in(ctx, self.weight.loinc_codes(), at, lookback) if w[1].quantity]
        heights = [h for h in observations_in(ctx, self.height.loinc_codes(), at, lookback) if h[1].quantity]
        if not weights or not heights:
            return Reading(MISSING)
        (_, wobs, wcode), (_, hobs, hcode) = weights[-1], heights[-1]
        assert wobs.quantity is not None and hobs.quantity is not None
        kg = units.convert(wobs.quantity.value, wobs.quantity.unit, "kg")
        metres = units.convert(hobs.quantity.value, hobs.quantity.unit, "m")
        evidence = (quantity_evidence(wcode, wobs), quantity_evidence(hcode, hobs))
        if kg is None or metres is None or metres <= 0:
            return Reading(MISSING, undefined=True, evidence=evidence)
        return Reading(kg / (metres * metres), evidence=(*evidence, f"bmi={kg / (metres * metres):.1f} kg/m2"))


@dataclass(frozen=True)
class LatestObservation(Feature):
    """The latest final value in the look-back, in ``unit`` (NaN when there is none)."""

    key: str
    matcher: CodeMatcher
    unit: str
    lookback: Span
    project: str | None = None
    fallback: BmiSource | None = None

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        found = [f for f in observations_in(ctx, self.matcher.loinc_codes(), at, self.lookback) if f[1].quantity]
        if not found:
            if self.fallback is not None:
                return self.fallback.compute(ctx, at, self.lookback)
            return Reading(MISSING)
        moment, obs, coding = found[-1]
        assert obs.quantity is not None
        value = units.convert(obs.quantity.value, obs.quantity.unit, self.unit, self.matcher.analyte)
        evidence = (quantity_evidence(coding, obs),)
        if value is None:
            return Reading(MISSING, undefined=True, evidence=(f"unit not convertible: {evidence[0]}",))
        if self.project == "gestational_age":
            value += age_in_days(moment, at) / 7.0
        return Reading(value, evidence=evidence)

    def describe(self) -> str:
        return f"latest {'+'.join(self.matcher.ids)} within {self.lookback.iso()}"


@dataclass(frozen=True)
class AnyObservation(Feature):
    """Whether any final value in the look-back passes the threshold (MH-01: a later 0 does not cancel)."""

    key: str
    matcher: CodeMatcher
    unit: str
    lookback: Span
    op: str
    threshold: float

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        found = [f for f in observations_in(ctx, self.matcher.loinc_codes(), at, self.lookback) if f[1].quantity]
        if not found:
            return Reading(MISSING)
        evidence: list[str] = []
        undefined: list[str] = []
        for _, obs, coding in found:
            assert obs.quantity is not None
            value = units.convert(obs.quantity.value, obs.quantity.unit, self.unit, self.matcher.analyte)
            if value is None:
                undefined.append(f"unit not convertible: {quantity_evidence(coding, obs)}")
            elif compare(value, self.op, self.threshold):
                evidence.append(quantity_evidence(coding, obs))
        if evidence:
            return Reading(1.0, evidence=tuple(evidence))
        if undefined:
            return Reading(MISSING, undefined=True, evidence=tuple(undefined))
        return FALSE_READING

    def describe(self) -> str:
        return f"any {'+'.join(self.matcher.ids)} {self.op} {number(self.threshold)} within {self.lookback.iso()}"


@dataclass(frozen=True)
class ObservationMissing(Feature):
    key: str
    matcher: CodeMatcher
    lookback: Span
    fallback: BmiSource | None = None

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        found = [f for f in observations_in(ctx, self.matcher.loinc_codes(), at, self.lookback) if f[1].quantity]
        if found:
            return FALSE_READING
        if self.fallback is not None and not self.fallback.compute(ctx, at, self.lookback).missing:
            return FALSE_READING
        codes = ",".join(sorted(self.matcher.loinc_codes()))
        return Reading(1.0, evidence=(f"{CodeSystem.LOINC.value}|{codes} none within {self.lookback.iso()}",))

    def describe(self) -> str:
        return f"no {'+'.join(self.matcher.ids)} within {self.lookback.iso()}"


@dataclass(frozen=True)
class WeightGain(Feature):
    """rules-spec §0.6: latest weight w2 at most ``latest_within`` old, minus the lowest weight in
    [t(w2) - baseline, t(w2)), is at least ``gain``."""

    key: str
    matcher: CodeMatcher
    unit: str
    gain: float
    latest_within: Span
    baseline: Span

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        found = [f for f in observations_in(ctx, self.matcher.loinc_codes(), at, None) if f[1].quantity]
        if not found:
            return FALSE_READING
        latest_moment = found[-1][0]
        if not within(latest_moment, at, None, self.latest_within):
            return FALSE_READING
        values: list[tuple[float, str]] = []
        for _, obs, code in found:
            assert obs.quantity is not None
            value = units.convert(obs.quantity.value, obs.quantity.unit, self.unit, self.matcher.analyte)
            if value is None:
                reason = f"unit not convertible: {quantity_evidence(code, obs)}"
                return Reading(0.0, undefined=True, evidence=(reason,))
            values.append((value, quantity_evidence(code, obs)))
        w2, w2_evidence = values[-1]
        t2 = latest_moment.instant
        start = t2.timestamp() - self._baseline_seconds()
        earlier = [
            values[i] for i, item in enumerate(found[:-1])
            if start <= item[0].instant.timestamp() < t2.timestamp()
        ]
        if not earlier:
            return FALSE_READING
        low, low_evidence = min(earlier, key=lambda item: item[0])
        if w2 - low >= self.gain - 1e-9:
            return Reading(1.0, evidence=(low_evidence, w2_evidence))
        return FALSE_READING

    def _baseline_seconds(self) -> float:
        if self.baseline.days is not None:
            return self.baseline.days * 86400.0
        return float(self.baseline.seconds or 0)

    def describe(self) -> str:
        return f"weight gain >= {number(self.gain)} {self.unit}"


@dataclass(frozen=True)
class PersistentObservation(Feature):
    """Two readings passing the threshold at least ``min_span`` apart, and the latest one passing too."""

    key: str
    matcher: CodeMatcher
    unit: str
    lookback: Span
    op: str
    threshold: float
    min_span_days: int

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        found = [f for f in observations_in(ctx, self.matcher.loinc_codes(), at, self.lookback) if f[1].quantity]
        passing: list[tuple[Moment, str]] = []
        latest_passes = False
        for i, (moment, obs, coding) in enumerate(found):
            assert obs.quantity is not None
            value = units.convert(obs.quantity.value, obs.quantity.unit, self.unit, self.matcher.analyte)
            if value is None:
                reason = f"unit not convertible: {quantity_evidence(coding, obs)}"
                return Reading(0.0, undefined=True, evidence=(reason,))
            ok = compare(value, self.op, self.threshold)
            if ok:
                passing.append((moment, quantity_evidence(coding, obs) + f"@{moment.iso()}"))
            if i == len(found) - 1:
                latest_passes = ok
        if latest_passes and len(passing) >= 2:
            first, last = passing[0], passing[-1]
            if (last[0].day - first[0].day).days >= self.min_span_days:
                return Reading(1.0, evidence=(first[1], last[1]))
        return FALSE_READING

    def describe(self) -> str:
        return f"{'+'.join(self.matcher.ids)} {self.op} {number(self.threshold)} persistently"


# --- demographics and clinician facts -----------------------------------------------------------------


@dataclass(frozen=True)
class Age(Feature):
    key: str = "age"

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        years = ctx.age_at(at)
        if years is None:
            return Reading(MISSING, undefined=True, evidence=("age unknown (no birth date)",))
        return Reading(float(years), evidence=(f"age={years}",))

    def describe(self) -> str:
        return "age in whole years"


@dataclass(frozen=True)
class FactFeature(Feature):
    key: str
    kind: str
    values: frozenset[str] | None
    within: Span | None

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        evidence: list[str] = []
        for fact in ctx.facts:
            if fact.kind != self.kind:
                continue
            if fact.effective is not None and is_after(fact.effective, at):
                continue
            if self.within is not None and (
                fact.effective is None or not within(fact.effective, at, None, self.within)
            ):
                continue
            shown = fact.value_string or (number(fact.quantity.value) if fact.quantity else "")
            if self.values is not None and shown.strip().lower() not in self.values:
                continue
            when = f"@{fact.effective.iso()}" if fact.effective else ""
            evidence.append(f"{CodeSystem.CLINICAL_FACT.value}|{self.kind}={shown}{when}")
        return Reading(1.0, evidence=tuple(evidence)) if evidence else FALSE_READING

    def describe(self) -> str:
        return f"clinician fact {self.kind}"


OPERATORS: dict[str, Callable[[Any, float], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<": operator.lt, "<=": operator.le, "==": operator.eq,
}


def compare(value: float, op: str, threshold: float) -> bool:
    """``value op threshold`` (the same operators work element-wise on numpy arrays, see ``OPERATORS``)."""
    try:
        test = OPERATORS[op]
    except KeyError:
        raise ValueError(f"unknown operator {op!r}") from None
    return bool(test(value, threshold))
