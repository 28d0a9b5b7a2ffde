"""The batch evaluator: the same decisions as :func:`evaluate.decide`, for patients x nudges at once.

1. Each rule branch's patient criterion is evaluated over the feature columns with numpy (three-valued
   logic: definitely true / undefined masks), giving one small code per (patient, branch).
2. Patients with identical codes, and nudges with identical target columns, are grouped
   (``np.unique``): every pair in a group has the same answer.
3. Rule levels are broadcast over (patient group x nudge group); the decision is their maximum.

The result keeps the grouped grid and expands to full (patients x nudges) arrays on request.
Evidence strings are not produced here: explain a pair with the per-request evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nudge_engine.guardrails.columns import NudgeColumns, PatientColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet, Escalation, Level
from nudge_engine.guardrails.decision import Outcome
from nudge_engine.guardrails.evaluate import record_failure
from nudge_engine.guardrails.logic import BoolArray

Int8Array = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.intp]

# per (patient, branch): 0 false, 1 true, 2 undefined; +4 when the branch's escalation test is not false
_TRUE, _UNDEFINED, _ESCALATES = 1, 2, 4


@dataclass(frozen=True)
class BatchResult:
    rule_ids: tuple[str, ...]
    nudge_ids: tuple[str, ...]
    patient_group: IntArray  # (P,) -> row of the grid
    nudge_group: IntArray  # (N,) -> column of the grid
    rule_levels_grid: Int8Array  # (R, Gp, Gn): 0 none, 1 caution, 2 review, 3 block
    escalation_grid: Int8Array  # (Gp, Gn): 0 none, 1 urgent_clinical, 2 crisis

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.patient_group), len(self.nudge_group)

    def _expand(self, grid: Int8Array) -> Int8Array:
        return grid[self.patient_group[:, None], self.nudge_group[None, :]]

    def levels(self) -> Int8Array:
        """(P, N) most severe action level: 0 deliver, 1 deliver with caution, 2 review, 3 block."""
        return self._expand(self.rule_levels_grid.max(axis=0) if self.rule_ids else
                            np.zeros(self.escalation_grid.shape, dtype=np.int8))

    def escalations(self) -> Int8Array:
        return self._expand(self.escalation_grid)

    def rule_levels(self, rule_id: str) -> Int8Array:
        return self._expand(self.rule_levels_grid[self.rule_ids.index(rule_id)])

    def fired(self, patient: int, nudge: int) -> dict[str, str]:
        """Rule id -> action for one pair."""
        g, h = self.patient_group[patient], self.nudge_group[nudge]
        return {
            rid: Level.NAMES[int(self.rule_levels_grid[r, g, h])]
            for r, rid in enumerate(self.rule_ids) if self.rule_levels_grid[r, g, h]
        }

    def outcome(self, patient: int, nudge: int) -> Outcome:
        level = max((Level.OF_ACTION[a] for a in self.fired(patient, nudge).values()), default=0)
        return Outcome.BLOCK if level == Level.BLOCK else Outcome.REVIEW if level == Level.REVIEW else Outcome.DELIVER

    def escalation(self, patient: int, nudge: int) -> str | None:
        return Escalation.NAMES.get(int(self.escalation_grid[self.patient_group[patient], self.nudge_group[nudge]]))

    def counts(self) -> Mapping[str, int]:
        """Pairs per outcome (deliver counts caution too)."""
        lv = self.levels()
        return {"deliver": int((lv <= Level.CAUTION).sum()), "review": int((lv == Level.REVIEW).sum()),
                "block": int((lv == Level.BLOCK).sum())}


def _branch_codes(ruleset: CompiledRuleSet, patients: PatientColumns) -> npt.NDArray[np.int8]:
    """(P, branches) codes, and rule-level error floors folded in as 'undefined'."""
    cols = patients.columns()
    n = patients.size
    out: list[npt.NDArray[np.int8]] = []
    for rule in ruleset.rules:
        try:
            error = np.zeros(n, dtype=np.bool_)
            for feature in rule.features:
                error |= patients.errors[feature.key]
            codes = []
            for branch in rule.branches:
                if branch.when is None:
                    true, undefined = np.ones(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
                else:
                    true, undefined = branch.when.array(cols)
                code = np.where(true, _TRUE, np.where(undefined, _UNDEFINED, 0)).astype(np.int8)
                if branch.escalation:
                    escalates: BoolArray = np.ones(n, dtype=np.bool_)
                    if branch.escalate_when is not None:
                        t, u = branch.escalate_when.array(cols)
                        escalates = t | u
                    code = code + np.where(true & escalates, _ESCALATES, 0).astype(np.int8)
                codes.append(code)
            # a failing feature read floors the rule at review: mark its first branch undefined too
            error_code = np.where(error, 8, 0).astype(np.int8)
            codes[0] = codes[0] + error_code
        except Exception as exc:
            record_failure(rule.id, "error", exc.__class__.__name__)
            codes = [np.full(n, 8, dtype=np.int8) for _ in rule.branches]
        out.extend(codes)
    return np.stack(out, axis=1) if out else np.zeros((n, 0), dtype=np.int8)


def _groups(matrix: npt.NDArray[np.int8] | BoolArray) -> tuple[npt.NDArray[np.generic], IntArray]:
    rows = np.ascontiguousarray(matrix)
    if rows.shape[1] == 0:
        return rows[:1], np.zeros(rows.shape[0], dtype=np.intp)
    packed = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    return rows[first], inverse.astype(np.intp).ravel()


def evaluate_batch(patients: PatientColumns, nudges: NudgeColumns, ruleset: CompiledRuleSet) -> BatchResult:
    codes = _branch_codes(ruleset, patients)
    patient_rows, patient_group = _groups(codes)
    nudge_cols, nudge_group = _groups(nudges.targets.T)
    gp, gn = patient_rows.shape[0], nudge_cols.shape[0]
    levels = np.zeros((len(ruleset.rules), gp, gn), dtype=np.int8)
    escalation = np.zeros((gp, gn), dtype=np.int8)
    b = 0
    for r, rule in enumerate(ruleset.rules):
        targeted_any = np.zeros(gn, dtype=np.bool_)
        failed = np.zeros(gp, dtype=np.bool_)
        for k, branch in enumerate(rule.branches):
            code = patient_rows[:, b + k].astype(np.int16)
            target = nudge_cols[:, b + k].astype(np.bool_)
            targeted_any |= target
            base = code & 3
            fires = np.outer(base == _TRUE, target)
            unknown = np.outer(base == _UNDEFINED, target)
            np.maximum(levels[r], np.where(fires, branch.level, 0).astype(np.int8), out=levels[r])
            np.maximum(levels[r], np.where(unknown, Level.REVIEW, 0).astype(np.int8), out=levels[r])
            if branch.escalation:
                esc = np.outer((code & _ESCALATES) > 0, target)
                np.maximum(escalation, np.where(esc, branch.escalation, 0).astype(np.int8), out=escalation)
            if k == 0:
                failed = (code & 8) > 0
        np.maximum(levels[r], np.where(np.outer(failed, targeted_any), Level.REVIEW, 0).astype(np.int8),
                   out=levels[r])
        b += len(rule.branches)
    return BatchResult(ruleset.rule_ids, nudges.ids, patient_group, nudge_group, levels, escalation)
