"""The result of planning one batch: columnar tables the build writes, and a per-patient view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.candidates import REASONS, DropReason


@dataclass(frozen=True, slots=True)
class ChosenNudge:
    nudge_id: str
    rank: int
    score: float
    propensity: float
    explored: bool
    not_before_s: float
    caution: tuple[str, ...]
    fired: tuple[str, ...]
    components: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GuardedNudge:
    nudge_id: str
    fired: tuple[str, ...]
    escalation: str | None
    routed: bool  # review only: a review item should be opened


@dataclass(frozen=True, slots=True)
class PatientPlan:
    patient_idx: int
    chosen: list[ChosenNudge]
    review: list[GuardedNudge]
    blocked: list[GuardedNudge]
    dropped: dict[str, DropReason]
    segments: list[str]
    removed_by_guardrails: list[str]
    model_version: str


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Outcome of one batch. Table rows point at the patient by ``row`` (position in the batch).

    ``chosen_*``: the ready nudges, ``rank`` 0 first. ``review_*``/``blocked_*``: pairs the guardrails
    routed to a clinician or blocked (drop reason ``blocked_by_rule``). ``dropped_*``: pairs removed
    before the guardrails, with a :data:`REASONS` code. Permitted pairs that were not chosen appear
    in no table.
    """

    patient_idx: npt.NDArray[np.int64]
    nudge_ids: tuple[str, ...]
    segment_ids: tuple[str, ...]
    membership: npt.NDArray[np.bool_]
    model_version: str
    segment_version: str
    catalog_digest: str
    ruleset_digest: str
    weights: dict[str, float]

    chosen_row: npt.NDArray[np.int32]
    chosen_nudge: npt.NDArray[np.int32]
    chosen_rank: npt.NDArray[np.int8]
    chosen_score: npt.NDArray[np.float64]
    chosen_propensity: npt.NDArray[np.float64]
    chosen_explored: npt.NDArray[np.bool_]
    chosen_not_before_s: npt.NDArray[np.float64]
    chosen_caution: list[tuple[str, ...]]
    chosen_fired: list[tuple[str, ...]]
    chosen_components: dict[str, npt.NDArray[np.float64]]

    review_row: npt.NDArray[np.int32]
    review_nudge: npt.NDArray[np.int32]
    review_fired: list[tuple[str, ...]]
    review_escalation: list[str | None]
    review_routed: npt.NDArray[np.bool_]

    blocked_row: npt.NDArray[np.int32]
    blocked_nudge: npt.NDArray[np.int32]
    blocked_fired: list[tuple[str, ...]]
    blocked_escalation: list[str | None]

    dropped_row: npt.NDArray[np.int32]
    dropped_nudge: npt.NDArray[np.int32]
    dropped_reason: npt.NDArray[np.int8]

    days_since_delivery: npt.NDArray[np.float64]
    eligible_count: npt.NDArray[np.int32]  # candidates that passed eligibility (before burden and guardrails)
    # What off-policy evaluation needs to replay a decision: the permitted set and the context.
    permitted: npt.NDArray[np.bool_]  # (P, N) guardrails allowed (deliver or caution) after burden checks
    caution: npt.NDArray[np.bool_]  # (P, N)
    behaviour: npt.NDArray[np.float64]  # (P, behaviour features) at planning time
    # Why each pair scored what it did: every component of every pair (posterior means) and the weight
    # each patient's score used (per programme / per request); see agenda.explain_ranking.
    score_parts: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)  # name -> (P, N)
    row_weights: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)  # name -> (P,)

    def weight_of(self, row: int, name: str) -> float:
        """The weight component ``name`` had in patient ``row``'s score."""
        if name in self.row_weights:
            return float(self.row_weights[name][row])
        return float(self.weights.get(name, 0.0))

    def __len__(self) -> int:
        return len(self.patient_idx)

    def segments_of(self, row: int) -> list[str]:
        return [self.segment_ids[j] for j in np.flatnonzero(self.membership[row])]

    def components_record(self, i: int) -> dict[str, Any]:
        """The ``score_components`` document of chosen row ``i``: every component with its weight.

        Numbers are rounded to 6 decimals, and an undefined one (NaN, infinite) is ``None``: the
        document is stored as JSON as it is.

        The top pick (rank 0) also carries what off-policy evaluation needs to replay the decision:
        the permitted and caution nudge ids and the behaviour context (see ``LoggedDecisions``).
        """
        return self.components_records([i])[0]

    def components_records(self, chosen: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """``components_record(i)`` for each chosen row ``i`` (all by default), read column by column."""
        picked = np.arange(len(self.chosen_row)) if chosen is None else np.asarray(chosen, dtype=np.intp)
        rows = self.chosen_row[picked]
        n = len(rows)
        columns = []
        for name, values in self.chosen_components.items():
            key = str(name)
            weights = (_numbers(np.asarray(self.row_weights[key], dtype=np.float64)[rows]) if key in self.row_weights
                       else [_number(float(self.weights.get(key, 0.0)))] * n)
            columns.append((key, _numbers(np.asarray(values, dtype=np.float64)[picked]), weights))
        explored, top = self.chosen_explored[picked].tolist(), (self.chosen_rank[picked] == 0).tolist()
        records: list[dict[str, Any]] = []
        for i in range(n):
            doc: dict[str, Any] = {
                "components": {key: {"value": values[i], "weight": weights[i]} for key, values, weights in columns},
                "explored": bool(explored[i]),
            }
            if top[i]:
                row = int(rows[i])
                doc["permitted"] = [self.nudge_ids[j] for j in np.flatnonzero(self.permitted[row]).tolist()]
                doc["caution"] = [self.nudge_ids[j] for j in np.flatnonzero(self.caution[row]).tolist()]
                doc["context"] = _numbers(self.behaviour[row])
            records.append(doc)
        return records

    def reason_counts(self) -> dict[str, int]:
        counts = np.bincount(self.dropped_reason, minlength=len(REASONS))
        out = {r.value: int(c) for r, c in zip(REASONS, counts, strict=True)}
        out[DropReason.BLOCKED_BY_RULE.value] += len(self.blocked_row)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "patients": len(self), "chosen": len(self.chosen_row), "review": len(self.review_row),
            "review_routed": int(self.review_routed.sum()), "blocked": len(self.blocked_row),
            "dropped": self.reason_counts(),
            "patients_without_nudge": int(len(self) - len(np.unique(self.chosen_row))),
        }

    def for_patient(self, row: int) -> PatientPlan:
        ids = self.nudge_ids

        def at(rows: npt.NDArray[np.int32]) -> Sequence[int]:
            return [int(i) for i in np.flatnonzero(rows == row)]

        chosen = [
            ChosenNudge(
                ids[self.chosen_nudge[i]], int(self.chosen_rank[i]), float(self.chosen_score[i]),
                float(self.chosen_propensity[i]), bool(self.chosen_explored[i]), float(self.chosen_not_before_s[i]),
                self.chosen_caution[i], self.chosen_fired[i], self.components_record(i),
            )
            for i in at(self.chosen_row)
        ]
        review = [
            GuardedNudge(ids[self.review_nudge[i]], self.review_fired[i], self.review_escalation[i],
                         bool(self.review_routed[i]))
            for i in at(self.review_row)
        ]
        blocked = [
            GuardedNudge(ids[self.blocked_nudge[i]], self.blocked_fired[i], self.blocked_escalation[i], False)
            for i in at(self.blocked_row)
        ]
        dropped = {ids[self.dropped_nudge[i]]: REASONS[self.dropped_reason[i]] for i in at(self.dropped_row)}
        return PatientPlan(
            int(self.patient_idx[row]), sorted(chosen, key=lambda c: c.rank), review, blocked, dropped,
            self.segments_of(row), [g.nudge_id for g in review + blocked], self.model_version,
        )


def _number(value: float) -> float | None:
    """A stored number: 6 decimals, or None when it is not finite (JSON has no NaN)."""
    return round(value, 6) if math.isfinite(value) else None


def _numbers(values: npt.NDArray[np.float64]) -> list[float | None]:
    rounded: list[float | None] = np.round(values, 6).tolist()
    if not np.isfinite(values).all():
        rounded = [v if math.isfinite(v) else None for v in rounded]  # type: ignore[arg-type]
    return rounded
