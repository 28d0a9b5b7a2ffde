"""The guardrail layer behind the personalization's port, for one shard.

Every (patient, nudge) decision, its fired rules and its escalation come from the columnar batch
evaluator. Evidence and caution texts come from the per-request evaluator, asked only for the pairs
that need them (flagged pairs the plan keeps) and only for the rules the batch fired, once per
(patient, group of nudges with identical rule targets), sharing the patient's feature reads. The two
evaluators are proven to agree by test; should a re-read rule ever answer more severely than the
batch, the more severe answer stands, and a fired rule the per-request evaluator does not confirm
keeps the batch's level (fail closed either way).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.batch import evaluate_batch
from nudge_engine.guardrails.columns import NudgeColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.decision import Decision, Outcome
from nudge_engine.guardrails.evaluate import PatientReads, decide
from nudge_engine.guardrails.row_contexts import RowContexts
from nudge_engine.guardrails.row_features import columns_from_rows
from nudge_engine.guardrails.rows import ClinicalRows
from nudge_engine.personalization.guardrail_port import GuardDecision, GuardrailBatch

_ESCALATION = {0: None, 1: "urgent_clinical", 2: "crisis"}
_SEVERITY = {Outcome.DELIVER: GuardDecision.DELIVER, Outcome.REVIEW: GuardDecision.REVIEW,
             Outcome.BLOCK: GuardDecision.BLOCK}


def _level(decision: Decision) -> int:
    if decision.decision is Outcome.DELIVER and decision.caution:
        return int(GuardDecision.CAUTION)
    return int(_SEVERITY[decision.decision])


class _LazyCaution(Sequence[tuple[str, ...]]):
    """Caution texts per asked pair, explained only for the pairs somebody reads."""

    def __init__(self, guard: ShardGuardrails, patients: npt.NDArray[np.int64], nudges: npt.NDArray[np.int32],
                 levels: npt.NDArray[np.int8]) -> None:
        self._guard, self._patients, self._nudges, self._levels = guard, patients, nudges, levels

    def __len__(self) -> int:
        return len(self._levels)

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | Sequence[tuple[str, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if self._levels[index] != GuardDecision.CAUTION:
            return ()
        return self._guard.explain(int(self._patients[index]), int(self._nudges[index])).caution

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return (self[i] for i in range(len(self)))


class ShardGuardrails:
    """Implements the personalization's GuardrailPort for the patients of one shard."""

    def __init__(
        self,
        ruleset: CompiledRuleSet,
        clinical: ClinicalRows,
        nudges: Sequence[Nudge],
        nudge_columns: NudgeColumns,
        *,
        as_of: datetime,
    ) -> None:
        self.ruleset = ruleset
        self.contexts = RowContexts(clinical)
        self.nudges = nudges
        self.as_of = as_of
        columns = columns_from_rows(clinical, as_of, ruleset, self.contexts)
        self.result = evaluate_batch(columns, nudge_columns, ruleset)
        self.levels = self.result.levels()
        self._fired_of_group: dict[tuple[int, int], tuple[str, ...]] = {}
        self._explained: dict[tuple[int, int], Decision] = {}
        self._reads: dict[int, PatientReads] = {}

    def explain(self, patient: int, nudge: int) -> Decision:
        """The per-request decision (with evidence) for a pair; shared by nudges with identical targets."""
        key = (patient, int(self.result.nudge_group[nudge]))
        found = self._explained.get(key)
        if found is None:
            reads = self._reads.get(patient)
            if reads is None:
                reads = self._reads[patient] = PatientReads(self.contexts(patient), self.as_of)
            found = decide(reads.ctx.ctx, self.nudges[nudge], self.ruleset, self.as_of, reads=reads,
                           only=self._fired(patient, nudge))
            self._explained[key] = found
            # Never less severe than the batch (fail closed).
            self.levels[patient, nudge] = max(int(self.levels[patient, nudge]), _level(found))
        return found

    def _fired(self, patient: int, nudge: int) -> tuple[str, ...]:
        return self._fired_in(int(self.result.patient_group[patient]), int(self.result.nudge_group[nudge]))

    def _fired_in(self, patient_group: int, nudge_group: int) -> tuple[str, ...]:
        """The rules fired for a (patient group, nudge group) cell of the batch result."""
        key = (patient_group, nudge_group)
        found = self._fired_of_group.get(key)
        if found is None:
            column = self.result.rule_levels_grid[:, patient_group, nudge_group]
            found = self._fired_of_group[key] = tuple(self.result.rule_ids[r] for r in np.flatnonzero(column > 0))
        return found

    def decide(self, patient_idx: npt.NDArray[np.int64], nudge_idx: npt.NDArray[np.int32]) -> GuardrailBatch:
        levels = self.levels[patient_idx, nudge_idx].astype(np.int8)
        groups = self.result.patient_group[patient_idx], self.result.nudge_group[nudge_idx]
        escalations = self.result.escalation_grid[groups]
        fired: list[tuple[str, ...]] = [()] * len(levels)
        escalation: list[str | None] = [None] * len(levels)
        flagged = np.flatnonzero(levels)
        # Pairs in the same (patient group, nudge group) fired the same rules: one look-up per group pair.
        keys = groups[0][flagged] * len(self.result.nudge_group) + groups[1][flagged]
        distinct, which = np.unique(keys, return_inverse=True)
        rules = [self._fired_in(*divmod(int(key), len(self.result.nudge_group))) for key in distinct.tolist()]
        for k, w in zip(flagged.tolist(), which.tolist(), strict=True):
            fired[k] = rules[w]
        for k in flagged[levels[flagged] >= GuardDecision.REVIEW].tolist():
            escalation[k] = _ESCALATION[int(escalations[k])]
        caution = _LazyCaution(self, patient_idx, nudge_idx, levels)
        return GuardrailBatch(levels, fired, caution, escalation, ruleset_digest=self.ruleset.digest)

    def evidence(self, patient: int, nudge: int) -> tuple[dict[str, object], ...]:
        """Each fired rule of a flagged pair with its action and evidence (for decisions and review items)."""
        return tuple(self.explain(patient, nudge).fired_entries())
