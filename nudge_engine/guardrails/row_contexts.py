"""One patient's :class:`PatientContext` rebuilt from :class:`ClinicalRows`, for explaining a decision.

The batch build decides from columns; evidence comes from the per-request evaluator, which reads a
context. ``RowContexts(rows)(i)`` builds patient ``i``'s context from the arrays already in memory,
holding everything a guardrail feature reads (codings, statuses, times, values and units; not
display texts or source ids), so explaining a flagged pair needs no further database reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

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
from nudge_engine.guardrails.rows import ClinicalRows, Coded, IntArray, Labels, Times

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _by_patient(patient: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """(row order grouped by patient, start offset of each patient in it), order kept within a patient."""
    order = np.argsort(patient, kind="stable")
    starts = np.searchsorted(patient[order], np.arange(n + 1))
    return order, starts


class RowContexts:
    def __init__(self, rows: ClinicalRows) -> None:
        self.rows = rows
        n = rows.n_patients
        self._conditions = _by_patient(rows.conditions.coded.patient, n)
        self._procedures = _by_patient(rows.procedures.coded.patient, n)
        self._medications = _by_patient(rows.medications.coded.patient, n)
        self._observations = _by_patient(rows.observations.coded.patient, n)
        self._facts = _by_patient(rows.facts.patient, n)

    def __call__(self, i: int) -> PatientContext:
        rows = self.rows
        c, p, m, o, f = rows.conditions, rows.procedures, rows.medications, rows.observations, rows.facts
        conditions = [
            Condition(codings, _label(c.clinical_status, k), _label(c.verification_status, k), _moment(c.onset, k),
                      _moment(c.abatement, k), _moment(c.recorded, k))
            for k, codings in self._resources(c.coded, self._conditions, i)
        ]
        procedures = [Procedure(codings, _label(p.status, k), _moment(p.performed, k))
                      for k, codings in self._resources(p.coded, self._procedures, i)]
        medications = [Medication(codings, _label(m.status, k), _moment(m.start, k), _moment(m.end, k))
                       for k, codings in self._resources(m.coded, self._medications, i)]
        observations = []
        for k in _rows_of(self._observations, i):
            value, unit, coded_value = float(o.value[k]), _label(o.unit, k), _label(o.value_code, k)
            system, _, code = (coded_value or "").partition("|")
            observations.append(Observation(
                (self._coding(o.coded, k),), _label(o.status, k), _moment(o.effective, k),
                None if math.isnan(value) else Quantity(value, unit),
                Coding(system, code) if coded_value else None,
            ))
        facts = []
        for k in _rows_of(self._facts, i):
            number = float(f.value[k])
            facts.append(ClinicalFact(_label(f.kind, k) or "", _moment(f.effective, k), _label(f.value_string, k),
                                      None if math.isnan(number) else Quantity(number)))
        return PatientContext(
            birth_date=rows.birth_date[i], conditions=tuple(conditions), procedures=tuple(procedures),
            medications=tuple(medications), observations=tuple(observations), facts=tuple(facts),
        )

    def _coding(self, coded: Coded, k: int) -> Coding:
        system, code = self.rows.codings[int(coded.code[k])]
        return Coding(system, code)

    def _resources(
        self, coded: Coded, index: tuple[IntArray, IntArray], i: int
    ) -> list[tuple[int, tuple[Coding, ...]]]:
        """(first row, codings) per resource of patient ``i``, in first-row order (as ``load_contexts``)."""
        grouped: dict[int, tuple[int, list[Coding]]] = {}
        for k in _rows_of(index, i):
            entry = grouped.setdefault(int(coded.resource[k]), (k, []))
            entry[1].append(self._coding(coded, k))
        return [(k, tuple(codings)) for k, codings in grouped.values()]


def _rows_of(index: tuple[IntArray, IntArray], i: int) -> list[int]:
    order, starts = index
    found: list[int] = order[starts[i]:starts[i + 1]].tolist()
    return found


def _label(labels: Labels, k: int) -> str | None:
    return labels.vocabulary[int(labels.ids[k])]


def _moment(times: Times, k: int) -> Moment | None:
    if not times.present[k]:
        return None
    return Moment(_EPOCH + timedelta(microseconds=int(times.us[k])), bool(times.date_only[k]))
