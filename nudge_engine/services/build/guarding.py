"""The guardrail layer behind the personalization's port, for one shard.

Every (patient, nudge) decision comes from the columnar batch evaluator. Pairs it flags (caution,
review, block) are explained again with the per-request evaluator to get the evidence; where
the two ever disagreed, the more severe answer stands (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.batch import evaluate_batch
from nudge_engine.guardrails.columns import NudgeColumns, PatientColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.decision import Decision, Outcome
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.personalization.guardrail_port import GuardDecision, GuardrailBatch

_LEVEL = {Outcome.DELIVER: GuardDecision.DELIVER, Outcome.REVIEW: GuardDecision.REVIEW,
          Outcome.BLOCK: GuardDecision.BLOCK}


def _level(decision: Decision) -> int:
    if decision.decision is Outcome.DELIVER and decision.caution:
        return int(GuardDecision.CAUTION)
    return int(_LEVEL[decision.decision])


class ShardGuardrails:
    """Implements the personalization's GuardrailPort for the patients of one shard."""

    def __init__(
        self,
        ruleset: CompiledRuleSet,
        contexts: Sequence[PatientContext],
        nudges: Sequence[Nudge],
        nudge_columns: NudgeColumns,
        *,
        as_of: datetime,
    ) -> None:
        self.ruleset = ruleset
        self.contexts = contexts
        self.nudges = nudges
        self.as_of = as_of
        self.levels = evaluate_batch(PatientColumns.from_contexts(contexts, as_of, ruleset), nudge_columns, ruleset
                                     ).levels()
        self.explained: dict[tuple[int, int], Decision] = {}

    def explain(self, patient: int, nudge: int) -> Decision:
        key = (patient, nudge)
        if key not in self.explained:
            self.explained[key] = decide(self.contexts[patient], self.nudges[nudge], self.ruleset, self.as_of)
        return self.explained[key]

    def decide(self, patient_idx: npt.NDArray[np.int64], nudge_idx: npt.NDArray[np.int32]) -> GuardrailBatch:
        levels = self.levels[patient_idx, nudge_idx].astype(np.int8)
        fired: list[tuple[str, ...]] = []
        caution: list[tuple[str, ...]] = []
        escalation: list[str | None] = []
        for k in range(len(levels)):
            if levels[k] == GuardDecision.DELIVER:
                fired.append(())
                caution.append(())
                escalation.append(None)
                continue
            explained = self.explain(int(patient_idx[k]), int(nudge_idx[k]))
            levels[k] = max(int(levels[k]), _level(explained))
            fired.append(tuple(sorted(explained.fired_rules)))
            caution.append(explained.caution)
            escalation.append(explained.escalation)
        return GuardrailBatch(levels, fired, caution, escalation, ruleset_digest=self.ruleset.digest)

    def evidence(self, patient: int, nudge: int) -> tuple[dict[str, object], ...]:
        """Each fired rule of a flagged pair with its action and evidence (for decisions and review items)."""
        explained = self.explain(patient, nudge)
        return tuple(
            {"rule": f.rule, "action": f.action, "evidence": list(f.evidence)} for f in explained.fired
        )
