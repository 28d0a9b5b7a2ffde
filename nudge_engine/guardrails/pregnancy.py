"""Active pregnancy (rules-spec §1.3 and §0.20).

Pregnancy evidence is an *active* condition in the pregnancy value sets, or a final Pregnancy status
observation (LOINC 82810-3) valued "pregnant". Each piece of evidence expires 42 weeks after its onset /
effective time, and is cancelled by any pregnancy-end evidence dated on a later day: an abatement of a
pregnancy condition, a delivery / abortive-outcome condition or procedure, or a "not pregnant" status.
Evidence with no date at all counts only when there is no end evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Moment
from nudge_engine.guardrails.features import (
    EXCLUDED_VERIFICATION,
    FALSE_READING,
    FINAL_OBSERVATION,
    PROCEDURE_NEVER,
    Feature,
    PatientView,
    Reading,
    condition_counts,
    evidence_of,
)
from nudge_engine.guardrails.timewindows import Span, is_after, within
from nudge_engine.guardrails.valuesets import CodeMatcher


@dataclass(frozen=True)
class PregnancyFeature(Feature):
    conditions: CodeMatcher
    end_conditions: CodeMatcher
    end_procedures: CodeMatcher
    status_observation: CodeMatcher
    pregnant_value: str
    not_pregnant_value: str
    expiry: Span
    key: str = "pregnant"

    def read(self, ctx: PatientView, at: datetime) -> Reading:
        ends = self._end_days(ctx, at)
        last_end = max(ends) if ends else None
        evidence: list[str] = []
        for cond in ctx.conditions:
            coding = self.conditions.matches(cond.codings)
            if coding is None or not condition_counts(cond, at, history=False):
                continue
            self._consider(cond.onset or cond.recorded, evidence_of(coding, cond.onset), at, last_end, evidence)
        for obs in ctx.observations:
            value = obs.value_coding
            if (obs.status not in FINAL_OBSERVATION or value is None or value.system != CodeSystem.SNOMED
                    or value.code != self.pregnant_value or self.status_observation.matches(obs.codings) is None):
                continue
            code = self.status_observation.matches(obs.codings)
            assert code is not None
            shown = f"{code.system}|{code.code}={value.code}" + (f"@{obs.effective.iso()}" if obs.effective else "")
            self._consider(obs.effective, shown, at, last_end, evidence)
        return Reading(1.0, evidence=tuple(evidence)) if evidence else FALSE_READING

    def _consider(
        self, moment: Moment | None, shown: str, at: datetime, last_end: date | None, evidence: list[str]
    ) -> None:
        if moment is None:
            if last_end is None:
                evidence.append(shown)
            return
        if is_after(moment, at) or not within(moment, at, None, self.expiry):
            return
        if last_end is not None and last_end > moment.day:
            return
        evidence.append(shown)

    def _end_days(self, ctx: PatientView, at: datetime) -> list[date]:
        days: list[date] = []
        for cond in ctx.conditions:
            if cond.verification_status in EXCLUDED_VERIFICATION:
                continue
            abated = cond.abatement
            if abated is not None and not is_after(abated, at) and self.conditions.matches(cond.codings):
                days.append(abated.day)
            if self.end_conditions.matches(cond.codings) is not None:
                when = cond.onset or cond.recorded
                if when is not None and not is_after(when, at):
                    days.append(when.day)
        for proc in ctx.procedures:
            if proc.status in PROCEDURE_NEVER or proc.performed is None or is_after(proc.performed, at):
                continue
            if self.end_procedures.matches(proc.codings) is not None:
                days.append(proc.performed.day)
        for obs in ctx.observations:
            value = obs.value_coding
            if (obs.status in FINAL_OBSERVATION and obs.effective is not None and value is not None
                    and value.system == CodeSystem.SNOMED and value.code == self.not_pregnant_value
                    and not is_after(obs.effective, at) and self.status_observation.matches(obs.codings)):
                days.append(obs.effective.day)
        return days

    def describe(self) -> str:
        return "active pregnancy"
