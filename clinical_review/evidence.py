"""Evidence and clinical context as a clinician reads them: code system, code, name, value, date.

The guardrails write evidence as compact strings (``system|code=value unit``, ``system|code@date``,
or a sentence such as ``http://loinc.org|8480-6 none within P30D``). This module splits them into
columns and names each code from the patient's own record where it can.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from nudge_engine.domain.context import Coding, Moment, PatientContext

SYSTEMS = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC",
    "http://loinc.org": "LOINC",
    "https://nudge-engine.dev/fhir/clinical-fact": "Clinical fact",
}
_CODED = re.compile(
    r"^(?P<system>[a-z]+:[^|\s]+)\|(?P<code>[^=@\s]+)"
    r"(?:=(?P<value>[^@\s]+)(?: (?P<unit>[^@]+))?)?(?:@(?P<date>\S+))?(?P<rest>.*)$"
)
MAX_OBSERVATIONS = 40


def system_label(system: str | None) -> str:
    return SYSTEMS.get(system or "", system or "")


@dataclass(frozen=True, slots=True)
class EvidenceLine:
    system: str
    code: str
    display: str | None
    value: str | None
    date: str | None
    note: str


def parse_evidence(text: str, names: dict[tuple[str, str], str]) -> EvidenceLine:
    m = _CODED.match(text)
    if m is None:
        return EvidenceLine("", "", None, None, None, text)
    value = m["value"] + (f" {m['unit'].strip()}" if m["unit"] else "") if m["value"] else None
    return EvidenceLine(
        system=system_label(m["system"]), code=m["code"], display=names.get((m["system"], m["code"])),
        value=value, date=m["date"], note=m["rest"].strip(),
    )


@dataclass(frozen=True, slots=True)
class ContextLine:
    kind: str
    system: str
    code: str
    display: str | None
    status: str | None
    value: str | None
    date: str | None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class ContextView:
    age: int | None
    sex: str | None
    lines: tuple[ContextLine, ...]
    names: dict[tuple[str, str], str]


def _iso(moment: Moment | None) -> str | None:
    return moment.iso() if moment is not None else None


def _first(codings: Iterable[Coding]) -> Coding:
    return next(iter(codings), Coding("", ""))


def _number(value: float) -> str:
    return f"{value:g}"


def context_view(ctx: PatientContext, now: datetime) -> ContextView:
    """Conditions, medications, procedures, recent observations and clinician facts, newest first."""
    names = {
        (c.system, c.code): c.display
        for group in (ctx.conditions, ctx.medications, ctx.procedures, ctx.observations)
        for item in group for c in item.codings if c.display
    }
    lines: list[ContextLine] = []
    for cond in ctx.conditions:
        c = _first(cond.codings)
        lines.append(ContextLine("Condition", system_label(c.system), c.code, c.display, cond.clinical_status,
                                 None, _iso(cond.onset), _iso(cond.abatement)))
    for med in ctx.medications:
        c = _first(med.codings)
        lines.append(ContextLine("Medication", system_label(c.system), c.code, c.display, med.status, None,
                                 _iso(med.start), _iso(med.end)))
    for proc in ctx.procedures:
        c = _first(proc.codings)
        lines.append(ContextLine("Procedure", system_label(c.system), c.code, c.display, proc.status, None,
                                 _iso(proc.performed)))
    observations = sorted(ctx.observations, key=lambda o: o.effective.at if o.effective else now, reverse=True)
    for obs in observations[:MAX_OBSERVATIONS]:
        c = _first(obs.codings)
        if obs.quantity is not None:
            value: str | None = _number(obs.quantity.value) + (f" {obs.quantity.unit}" if obs.quantity.unit else "")
        elif obs.value_coding is not None:
            value = obs.value_coding.display or obs.value_coding.code
        else:
            value = None  # free-text values are not shown: they may hold anything
        lines.append(ContextLine("Observation", system_label(c.system), c.code, c.display, obs.status, value,
                                 _iso(obs.effective)))
    for fact in ctx.facts:
        value = fact.value_string if fact.value_string and len(fact.value_string) <= 40 else None
        if fact.quantity is not None:
            value = _number(fact.quantity.value) + (f" {fact.quantity.unit}" if fact.quantity.unit else "")
        lines.append(ContextLine("Clinical fact", SYSTEMS["https://nudge-engine.dev/fhir/clinical-fact"], fact.kind,
                                 None, None, value, _iso(fact.effective)))
    return ContextView(age=ctx.age_at(now), sex=ctx.sex, lines=tuple(lines), names=names)
