"""One patient's :class:`PatientContext` rebuilt from :class:`ClinicalRows`, for explaining a decision.

The batch build decides from columns; evidence comes from the per-request evaluator, which reads a
context. ``RowContexts(rows)(i)`` builds patient ``i``'s context from the arrays already in memory,
holding everything a guardrail feature reads (codings, statuses, times, values and units; not
display texts or source ids), so explaining a flagged pair needs no further database reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

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
    """Patients' contexts rebuilt from the rows on demand; columns are turned into Python lists once."""

    def __init__(self, rows: ClinicalRows) -> None:
        self.rows = rows
        n = rows.n_patients
        self._conditions = _by_patient(rows.conditions.coded.patient, n)
        self._procedures = _by_patient(rows.procedures.coded.patient, n)
        self._medications = _by_patient(rows.medications.coded.patient, n)
        self._observations = _by_patient(rows.observations.coded.patient, n)
        self._facts = _by_patient(rows.facts.patient, n)
        # Reading numpy arrays element by element is slow; each column the contexts read is converted
        # to a list (or a list of Moments) the first time, keyed by the identity of its array.
        self._lists: dict[int, list[Any]] = {}
        self._moments: dict[int, list[Moment | None]] = {}
        self._codings: list[Coding] = [Coding(system, code) for system, code in rows.codings]

    def __call__(self, i: int) -> PatientContext:
        rows = self.rows
        c, p, m, o, f = rows.conditions, rows.procedures, rows.medications, rows.observations, rows.facts
        label, moment = self._label, self._moment
        conditions = [
            Condition(codings, label(c.clinical_status, k), label(c.verification_status, k), moment(c.onset, k),
                      moment(c.abatement, k), moment(c.recorded, k))
            for k, codings in self._resources(c.coded, self._conditions, i)
        ]
        procedures = [Procedure(codings, label(p.status, k), moment(p.performed, k))
                      for k, codings in self._resources(p.coded, self._procedures, i)]
        medications = [Medication(codings, label(m.status, k), moment(m.start, k), moment(m.end, k))
                       for k, codings in self._resources(m.coded, self._medications, i)]
        observations = []
        values, codes = self._list(o.value), self._list(o.coded.code)
        for k in _rows_of(self._observations, i):
            value, unit, coded_value = float(values[k]), label(o.unit, k), label(o.value_code, k)
            system, _, code = (coded_value or "").partition("|")
            observations.append(Observation(
                (self._codings[codes[k]],), label(o.status, k), moment(o.effective, k),
                None if math.isnan(value) else Quantity(value, unit),
                Coding(system, code) if coded_value else None,
            ))
        facts = []
        numbers = self._list(f.value)
        for k in _rows_of(self._facts, i):
            number = float(numbers[k])
            facts.append(ClinicalFact(label(f.kind, k) or "", moment(f.effective, k), label(f.value_string, k),
                                      None if math.isnan(number) else Quantity(number)))
        return PatientContext(
            birth_date=rows.birth_date[i], conditions=tuple(conditions), procedures=tuple(procedures),
            medications=tuple(medications), observations=tuple(observations), facts=tuple(facts),
        )

    def _list(self, array: npt.NDArray[Any]) -> list[Any]:
        found = self._lists.get(id(array))
        if found is None:
            found = self._lists[id(array)] = array.tolist()
        return found

    def _label(self, labels: Labels, k: int) -> str | None:
        label: str | None = labels.vocabulary[self._list(labels.ids)[k]]
        return label

    def _moment(self, times: Times, k: int) -> Moment | None:
        found = self._moments.get(id(times))
        if found is None:
            found = self._moments[id(times)] = [
                Moment(_EPOCH + timedelta(microseconds=us), date_only) if present else None
                for us, present, date_only in zip(times.us.tolist(), times.present.tolist(), times.date_only.tolist(),
                                                  strict=True)
            ]
        return found[k]

    def _resources(
        self, coded: Coded, index: tuple[IntArray, IntArray], i: int
    ) -> list[tuple[int, tuple[Coding, ...]]]:
        """(first row, codings) per resource of patient ``i``, in first-row order (as ``load_contexts``)."""
        resources, codes = self._list(coded.resource), self._list(coded.code)
        grouped: dict[int, tuple[int, list[Coding]]] = {}
        for k in _rows_of(index, i):
            entry = grouped.setdefault(resources[k], (k, []))
            entry[1].append(self._codings[codes[k]])
        return [(k, tuple(codings)) for k, codings in grouped.values()]


def _rows_of(index: tuple[IntArray, IntArray], i: int) -> list[int]:
    order, starts = index
    found: list[int] = order[starts[i]:starts[i + 1]].tolist()
    return found
