"""What the personalization needs from the guardrails: a batch decision per (patient, nudge) pair.

The build adapts the guardrail package's batch evaluator to this port; tests use a fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput


class GuardDecision(IntEnum):
    DELIVER = 0
    CAUTION = 1  # deliver, with caution text
    REVIEW = 2
    BLOCK = 3


@dataclass(frozen=True, slots=True)
class GuardrailBatch:
    """One entry per asked pair, in the order asked."""

    decision: npt.NDArray[np.int8]  # GuardDecision codes
    fired: Sequence[tuple[str, ...]]  # rule ids that fired, per pair
    caution: Sequence[tuple[str, ...]]  # caution texts, per pair
    escalation: Sequence[str | None]  # None, "crisis" or "urgent_clinical", per pair
    ruleset_digest: str = ""

    def check(self, n: int) -> None:
        for name in ("decision", "fired", "caution", "escalation"):
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"GuardrailBatch: field '{name}': {len(getattr(self, name))} entries for {n} pairs")


class GuardrailPort(Protocol):
    def decide(self, patient_idx: npt.NDArray[np.int64], nudge_idx: npt.NDArray[np.int32]) -> GuardrailBatch:
        """Decide each (patient, catalog position) pair; ``patient_idx`` is ``PatientBatch.patient_idx``."""
        ...
