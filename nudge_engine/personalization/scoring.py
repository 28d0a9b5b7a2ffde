"""The score of a candidate: a weighted sum of named components.

``score = Σ weight[c] · component[c]``. Every component and its weight is recorded with the decision.
Only ``predicted`` is random (a Thompson draw); the others are deterministic, so the score of a
candidate is Gaussian and its chance of winning has a closed form (:mod:`propensity`).
The agenda components (:mod:`agenda`) plug in by name as ``extra_components``; segment popularity
is the ``baseline`` component.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from nudge_engine.domain.errors import InvalidInput


class Component(StrEnum):
    PREDICTED = "predicted"  # the bandit's draw of the expected reward (mean when not exploring)
    BASELINE = "baseline"  # smoothed completion rate of the patient's segments for this nudge
    PRIORITY = "priority"  # catalog priority / 10
    # Computed by agenda.agenda_components and passed as plan_batch(extra_components=...):
    AGENDA = "agenda"  # clinical priority of the behaviour the nudge serves in the patient's current stage / 10
    FRESHNESS = "freshness"  # 1 - exp(-days since this nudge was last delivered / 14); 1 when never
    NOVELTY = "novelty"  # 1 - the highest content similarity to a nudge delivered in the last 14 days
    MORE_LIKE_THIS = "more_like_this"  # content similarity to the nudge the patient last completed (7 days)
    # Computed by collaborative.ItemFactors from patient x nudge outcomes, once there are enough of them:
    COLLABORATIVE = "collaborative"  # predicted completion rate above the nudge's overall rate, from similar patients


COMPONENT_NAMES: frozenset[str] = frozenset(c.value for c in Component)

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {Component.PREDICTED: 1.0, Component.BASELINE: 0.0, Component.PRIORITY: 0.001}
)


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """Weights by component name; unknown names in overrides are an error, not silently ignored."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __getitem__(self, name: str) -> float:
        return float(self.weights.get(name, 0.0))

    def with_overrides(self, overrides: Mapping[str, float]) -> ScoreWeights:
        """These weights with ``overrides`` applied; a name must be a known component or already weighted."""
        unknown = sorted(set(overrides) - set(self.weights) - set(COMPONENT_NAMES))
        if unknown:
            raise InvalidInput(f"weights: field '{unknown[0]}': unknown score component")
        return ScoreWeights({**self.weights, **overrides})

    def as_dict(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.weights.items()}
