"""Segment flags from a patient's clinical context (the ``flags`` of ``segments.yaml``).

Segment flags only steer which nudges are *eligible*; safety is the guardrails' job. So these are
simple code-prefix tests on active conditions and recent observations, kept beside the build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding, Condition, PatientContext
from nudge_engine.guardrails.rows import DAY_US, ClinicalRows, IntArray, micros

ACTIVE = frozenset({"active", "recurrence", "relapse"})


def _codes(icd10: Sequence[str] = (), snomed: Sequence[str] = ()) -> Callable[[Condition], bool]:
    prefixes = tuple(icd10)
    concepts = frozenset(snomed)

    def match(condition: Condition) -> bool:
        for coding in condition.codings:
            if coding.system == CodeSystem.ICD10CM and coding.code.startswith(prefixes):
                return True
            if coding.system == CodeSystem.SNOMED and coding.code in concepts:
                return True
        return False

    return match


CONDITION_FLAGS: Mapping[str, Callable[[Condition], bool]] = {
    "has_t2d": _codes(["E11"], ["44054006"]),
    "has_prediabetes": _codes(["R73.03"], ["15777000", "714628002"]),
    "has_htn": _codes(["I10", "I11", "I12", "I13", "I15", "I16"], ["38341003", "59621000"]),
    "has_hf": _codes(["I50", "I11.0", "I13.0", "I13.2"], ["84114007", "42343007", "88805009"]),
    "has_chd": _codes(["I20", "I21", "I22", "I23", "I24", "I25"], ["53741008", "22298006", "1755008", "399211009"]),
    "has_ckd": _codes(["N18"], ["709044004", "431855005", "431856006", "433144002", "431857002", "433146000",
                                "46177005", "700379002", "700378005"]),
    "has_obesity": _codes(["E66"], ["414916001", "162864005", "408512008"]),
    "has_depression": _codes(["F32", "F33"], ["35489007", "370143000", "36923009"]),
    "has_insomnia": _codes(["G47.0", "F51.0"], ["193462001"]),
}
BMI, PHQ9 = "39156-5", "44261-6"


def _active(condition: Condition, at: datetime) -> bool:
    if condition.clinical_status not in ACTIVE:
        return False
    if condition.verification_status in {"refuted", "entered-in-error"}:
        return False
    return condition.abatement is None or condition.abatement.at > at


def _latest(ctx: PatientContext, loinc: str, at: datetime, days: int) -> float | None:
    best: tuple[datetime, float] | None = None
    for obs in ctx.observations:
        if obs.quantity is None or obs.effective is None or obs.effective.at > at:
            continue
        if obs.effective.at < at - timedelta(days=days):
            continue
        if any(c.code == loinc and c.system == CodeSystem.LOINC for c in obs.codings) and (
            best is None or obs.effective.at > best[0]
        ):
            best = (obs.effective.at, obs.quantity.value)
    return best[1] if best else None


def segment_flags(contexts: Sequence[PatientContext], at: datetime) -> dict[str, npt.NDArray[np.bool_]]:
    """One boolean array per flag, in ``contexts`` order."""
    n = len(contexts)
    flags = {name: np.zeros(n, dtype=bool) for name in (*CONDITION_FLAGS, "is_older_adult")}
    for i, ctx in enumerate(contexts):
        active = [c for c in ctx.conditions if _active(c, at)]
        for name, match in CONDITION_FLAGS.items():
            flags[name][i] = any(match(c) for c in active)
        if not flags["has_obesity"][i]:
            bmi = _latest(ctx, BMI, at, 365)
            flags["has_obesity"][i] = bmi is not None and bmi >= 30
        if not flags["has_depression"][i]:
            phq = _latest(ctx, PHQ9, at, 90)
            flags["has_depression"][i] = phq is not None and phq >= 10
        age = ctx.age_at(at)
        flags["is_older_adult"][i] = age is not None and age >= 65
    return flags


def segment_flags_from_rows(rows: ClinicalRows, at: datetime) -> dict[str, npt.NDArray[np.bool_]]:
    """The same flags as :func:`segment_flags`, read from decoded clinical rows with numpy."""
    n = rows.n_patients
    at_us = micros(at)
    c, o = rows.conditions, rows.observations
    active = c.clinical_status.isin(ACTIVE) & ~c.verification_status.isin({"refuted", "entered-in-error"})
    active &= ~c.abatement.present | (c.abatement.us > at_us)
    flags: dict[str, npt.NDArray[np.bool_]] = {}
    codings = [Condition((Coding(system, code),)) for system, code in rows.codings]
    for name, match in CONDITION_FLAGS.items():
        table = np.fromiter((match(x) for x in codings), dtype=np.bool_, count=len(codings))
        hit = active & table[c.coded.code] if c.coded.size else active
        flags[name] = np.bincount(c.coded.patient[hit], minlength=n)[:n] > 0

    def latest(loinc: str, days: int) -> npt.NDArray[np.float64]:
        wanted = np.fromiter((s == CodeSystem.LOINC and code == loinc for s, code in rows.codings), dtype=np.bool_,
                             count=len(rows.codings))
        mask = o.effective.present & ~np.isnan(o.value) & (o.effective.us <= at_us)
        mask &= o.effective.us >= at_us - days * DAY_US
        index: IntArray = np.flatnonzero(mask & wanted[o.coded.code]) if o.coded.size else np.flatnonzero(mask)
        patient = o.coded.patient[index]
        # latest time per patient; the first such row wins a tie, as in _latest
        order = np.lexsort((-index, o.effective.us[index], patient))
        last = np.ones(len(order), dtype=np.bool_)
        last[:-1] = patient[order][1:] != patient[order][:-1]
        values = np.full(n, np.nan)
        values[patient[order][last]] = o.value[index[order][last]]
        return values

    with np.errstate(invalid="ignore"):
        flags["has_obesity"] |= latest(BMI, 365) >= 30
        flags["has_depression"] |= latest(PHQ9, 90) >= 10
    ages = [PatientContext(birth_date=b).age_at(at) if b is not None else None for b in rows.birth_date]
    flags["is_older_adult"] = np.array([a is not None and a >= 65 for a in ages], dtype=np.bool_).reshape(n)
    return flags
