"""Small readers over a synthetic patient's context, used by the cohort tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from nudge_engine.cohort import SyntheticPatient
from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Observation

AS_OF = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def codes(patient: SyntheticPatient, *, active_only: bool = False) -> set[str]:
    found: set[str] = set()
    for condition in patient.record.context.conditions:
        if active_only and condition.clinical_status not in {"active", "recurrence", "relapse"}:
            continue
        found.update(c.code for c in condition.codings)
    return found


def has_code(patient: SyntheticPatient, *prefixes: str, active_only: bool = False) -> bool:
    return any(code.startswith(prefixes) for code in codes(patient, active_only=active_only))


def drug_codes(patient: SyntheticPatient, *, active_only: bool = True) -> set[str]:
    return {
        c.code
        for m in patient.record.context.medications
        if not active_only or m.status == "active"
        for c in m.codings
    }


def observations(patient: SyntheticPatient, loinc: str) -> Iterator[Observation]:
    for obs in patient.record.context.observations:
        if any(c.system == CodeSystem.LOINC.value and c.code == loinc for c in obs.codings):
            yield obs


def share(patients: list[SyntheticPatient], predicate: Callable[[SyntheticPatient], bool]) -> float:
    return sum(1 for p in patients if predicate(p)) / len(patients)
