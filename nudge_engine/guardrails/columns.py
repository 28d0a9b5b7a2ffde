"""Columnar inputs of the batch evaluator.

:class:`PatientColumns` holds one float64 column per patient feature of the compiled rule set
(``CompiledRuleSet.features``, keyed by ``Feature.key``), one row per patient, all read at one
``as_of``:

- yes/no features (conditions, medications in use, procedures, pregnancy, facts, missing observation,
  weight gain, persistent observation): 1.0 or 0.0;
- ``obs-latest:...``: the latest final value in the look-back, already in the criterion's unit, NaN when
  there is none; ``age``: whole years;
- ``undefined[key]``: True where the value could not be determined (unknown birth date, unconvertible
  unit ...); ``errors[key]``: True where reading it raised (the rule then fails closed to review).

Two ways in:

- ``PatientColumns.from_contexts(contexts, as_of, ruleset)`` reads each :class:`PatientContext` with the
  same feature readers as the per-request evaluator;
- ``PatientColumns.from_arrays(ruleset, as_of, values, undefined=None, errors=None)`` takes the columns
  ready-made (e.g. computed by SQL in the build cycle). Every key of ``ruleset.features`` must be present
  with shape ``(n_patients,)``; ``describe_features(ruleset)`` lists them with what each one means.

:class:`NudgeColumns` is the (branch x nudge) target matrix of a nudge catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.errors import InvalidInput
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.evaluate import read_safely, record_failure
from nudge_engine.guardrails.features import PatientView
from nudge_engine.guardrails.logic import BoolArray, Columns, FloatArray
from nudge_engine.guardrails.timewindows import utc


@dataclass(frozen=True)
class PatientColumns:
    as_of: datetime
    size: int
    values: Mapping[str, FloatArray]
    undefined: Mapping[str, BoolArray]
    errors: Mapping[str, BoolArray]

    @classmethod
    def from_arrays(
        cls,
        ruleset: CompiledRuleSet,
        as_of: datetime,
        values: Mapping[str, FloatArray],
        undefined: Mapping[str, BoolArray] | None = None,
        errors: Mapping[str, BoolArray] | None = None,
    ) -> PatientColumns:
        missing = sorted(set(ruleset.features) - set(values))
        if missing:
            raise InvalidInput(f"patient columns: missing feature column(s): {', '.join(missing[:3])} ...")
        sizes = {np.asarray(values[k]).shape for k in ruleset.features}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise InvalidInput(f"patient columns: every column needs the same shape (n,), got {sorted(sizes)}")
        size = next(iter(sizes))[0]

        def flags(given: Mapping[str, BoolArray] | None, key: str) -> BoolArray:
            if given is None or key not in given:
                return np.zeros(size, dtype=np.bool_)
            return np.asarray(given[key], dtype=np.bool_)

        return cls(
            as_of=utc(as_of),
            size=size,
            values={k: np.asarray(values[k], dtype=np.float64) for k in ruleset.features},
            undefined={k: flags(undefined, k) for k in ruleset.features},
            errors={k: flags(errors, k) for k in ruleset.features},
        )

    @classmethod
    def from_contexts(
        cls, contexts: Sequence[PatientContext], as_of: datetime, ruleset: CompiledRuleSet
    ) -> PatientColumns:
        at = utc(as_of)
        n = len(contexts)
        keys = list(ruleset.features)
        values = {k: np.empty(n, dtype=np.float64) for k in keys}
        undefined = {k: np.zeros(n, dtype=np.bool_) for k in keys}
        errors = {k: np.zeros(n, dtype=np.bool_) for k in keys}
        for i, ctx in enumerate(contexts):
            view = PatientView(ctx)
            for key in keys:
                reading, failed = read_safely(ruleset.features[key], view, at)
                values[key][i] = reading.value
                undefined[key][i] = reading.undefined
                if failed:
                    errors[key][i] = True
                    record_failure("-", "error", f"feature read failed: {key.split(':')[0]}")
        return cls(at, n, values, undefined, errors)

    def columns(self) -> Columns:
        return Columns(self.values, self.undefined)


@dataclass(frozen=True)
class NudgeColumns:
    ids: tuple[str, ...]
    targets: BoolArray  # (branches in rule order, nudges)

    @classmethod
    def from_nudges(cls, nudges: Sequence[Nudge], ruleset: CompiledRuleSet) -> NudgeColumns:
        branches = [b for r in ruleset.rules for b in r.branches]
        matrix = np.array(
            [[b.target.matches(n) for n in nudges] for b in branches], dtype=np.bool_
        ).reshape(len(branches), len(nudges))
        return cls(tuple(n.id for n in nudges), matrix)

    @property
    def size(self) -> int:
        return len(self.ids)


def describe_features(ruleset: CompiledRuleSet) -> dict[str, str]:
    """Feature key -> what the column holds, for whoever computes the columns elsewhere."""
    return {key: feature.describe() for key, feature in ruleset.features.items()}
