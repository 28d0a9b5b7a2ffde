"""Collaborative signal: what patients with a similar outcome history completed, as a score component.

From the patient × nudge matrix of deliveries and completions (raw events plus the retention
aggregates), each patient's shrunk completion rate per nudge minus the nudge's overall rate is a
residual; a truncated SVD (scikit-learn, fixed seed) of the residuals learns ``rank`` item factors.
A batch's patients are folded in (their residual rows projected on the factors), so the model is
fitted once per cycle and applied per batch. The component is 0 for patients with fewer than
``min_patient_outcomes`` deliveries, and there is no model at all (:meth:`ItemFactors.fit` gives
None) until the population has ``min_outcomes`` deliveries: too little data only adds noise.

Use it as ``plan_batch(extra_components={"collaborative": factors.component(delivered, completed)})``
with a weight named ``collaborative`` in the policy's ``ScoreWeights``.
:func:`compare_in_simulator` compares it offline against the segment baseline (simulator truth and
off-policy estimates on uniformly logged decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import TruncatedSVD

from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.ope import Estimate, LoggedDecisions, estimate
from nudge_engine.personalization.ranking import PolicyKind, RankingInput, RankingPolicy
from nudge_engine.personalization.scoring import Component, ScoreWeights
from nudge_engine.personalization.segment_spec import SegmentSpec
from nudge_engine.personalization.simulator import NOW, World, WorldSettings, make_world

NAME = "collaborative"
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CollaborativeSettings:
    rank: int = 4
    min_outcomes: int = 5_000  # deliveries across the population before the model exists at all
    min_patient_outcomes: int = 3  # a patient's own deliveries before the component is non-zero
    prior: float = 4.0  # pseudo-deliveries at the nudge's overall rate (shrinks thin cells)
    seed: int = 20250601


@dataclass(frozen=True, slots=True)
class ItemFactors:
    """Item factors (rank × nudges) and the overall rate per nudge."""

    nudge_ids: tuple[str, ...]
    factors: Matrix
    strength: Matrix  # per factor, its singular value relative to the first: weak factors count less
    nudge_rate: Matrix
    settings: CollaborativeSettings

    @classmethod
    def fit(
        cls, delivered: Matrix, completed: Matrix, nudge_ids: tuple[str, ...],
        settings: CollaborativeSettings | None = None,
    ) -> ItemFactors | None:
        """Factors from (patients × nudges) counts; None while there are too few outcomes."""
        s = settings or CollaborativeSettings()
        if float(delivered.sum()) < s.min_outcomes:
            return None
        rate = (completed.sum(axis=0) + 1.0) / (delivered.sum(axis=0) + 2.0)
        residual = _residual(delivered, completed, rate, s.prior)
        rank = max(1, min(s.rank, residual.shape[1] - 1, residual.shape[0] - 1))
        svd = TruncatedSVD(n_components=rank, random_state=s.seed, algorithm="randomized", n_iter=7)
        svd.fit(residual)
        values = np.asarray(svd.singular_values_, dtype=np.float64)
        strength = values / values[0] if values[0] > 0 else np.zeros_like(values)
        return cls(nudge_ids, np.asarray(svd.components_, dtype=np.float64), strength, rate, s)

    def component(self, delivered: Matrix, completed: Matrix) -> Matrix:
        """(patients × nudges) predicted residual completion rate for the given patients' counts."""
        residual = _residual(delivered, completed, self.nudge_rate, self.settings.prior)
        out: Matrix = ((residual @ self.factors.T) * self.strength[None, :]) @ self.factors
        out[delivered.sum(axis=1) < self.settings.min_patient_outcomes] = 0.0
        return out


def _residual(delivered: Matrix, completed: Matrix, rate: Matrix, prior: float) -> Matrix:
    shrunk = (completed + prior * rate[None, :]) / (delivered + prior)
    out: Matrix = np.where(delivered > 0, shrunk - rate[None, :], 0.0)
    return out


# --- offline comparison ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WithComponent:
    """A ranking policy evaluated with one extra component added to every ranking input."""

    policy: RankingPolicy
    values: Matrix  # (rows × nudges) for the rows being evaluated

    def _inp(self, inp: RankingInput) -> RankingInput:
        return replace(inp, extra={**inp.extra, NAME: self.values})

    def top_probability(self, inp: RankingInput, actions: npt.NDArray[np.intp]) -> Matrix:
        return self.policy.top_probability(self._inp(inp), actions)

    def expected_value(
        self, inp: RankingInput, values: Matrix, *, rng: np.random.Generator, n_samples: int = 64
    ) -> Matrix:
        return self.policy.expected_value(self._inp(inp), values, rng=rng, n_samples=n_samples)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Expected completion rate of each policy on the same arrivals: the simulator's truth and OPE estimates."""

    truth: dict[str, float]
    estimates: dict[str, dict[str, Estimate]]
    history_per_patient: int
    rows: int

    def as_text(self) -> str:
        lines = [f"collaborative vs segment baseline ({self.rows} arrivals, {self.history_per_patient} past "
                 "deliveries per patient)"]
        for name, truth in self.truth.items():
            dr = self.estimates[name]["dr"]
            lines.append(f"  {name:<28} truth {truth:.4f}   DR {dr.value:.4f} [{dr.low:.4f}, {dr.high:.4f}]")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"truth": self.truth, "rows": self.rows,
                "dr": {k: v["dr"].value for k, v in self.estimates.items()}}


def _history(world: World, per_patient: int, rng: np.random.Generator) -> tuple[Matrix, Matrix, Any]:
    """Each patient got ``per_patient`` uniformly drawn permitted nudges; outcomes from the hidden truth."""
    n, m = world.permitted.shape
    delivered = np.zeros((n, m))
    completed = np.zeros((n, m))
    rows_l, acts_l, rew_l = [], [], []
    rows = np.flatnonzero(world.permitted.any(axis=1))
    for _ in range(per_patient):
        act = np.where(world.permitted[rows], rng.random((len(rows), m)), -1.0).argmax(axis=1)
        reward = (rng.random(len(rows)) < world.true_prob[rows, act]).astype(np.float64)
        np.add.at(delivered, (rows, act), 1.0)
        np.add.at(completed, (rows, act), reward)
        rows_l.append(rows)
        acts_l.append(act)
        rew_l.append(reward)
    return delivered, completed, (np.concatenate(rows_l), np.concatenate(acts_l), np.concatenate(rew_l))


def compare_in_simulator(
    catalog: Catalog, spec: SegmentSpec, *, world_settings: WorldSettings | None = None,
    history_per_patient: int = 30, n_arrivals: int = 6_000, weight: float = 0.5,
    settings: CollaborativeSettings | None = None, seed: int = 3,
) -> Comparison:
    """Segment baseline alone vs. baseline + collaborative, both learned from the same simulated history.

    Truth: each policy's exact expected completion on fresh arrivals. Estimates: IPS/SNIPS/DR on
    decisions logged uniformly at random on those arrivals (``ope.estimate``).
    """
    world = make_world(catalog, spec, world_settings or WorldSettings(n_patients=3000))
    rng = np.random.default_rng(seed)
    delivered, completed, (h_rows, h_act, h_rew) = _history(world, history_per_patient, rng)
    baseline = SegmentBaseline.empty(world.segments.ids, catalog.ids).fit(
        world.membership[h_rows], h_act, h_rew, now=NOW)
    factors = ItemFactors.fit(delivered, completed, catalog.ids, settings)
    pool = np.flatnonzero(world.permitted.any(axis=1))
    rows = rng.choice(pool, n_arrivals)
    component = factors.component(delivered[rows], completed[rows]) if factors else np.zeros((len(rows), len(catalog)))

    permitted = world.permitted[rows]
    n_perm = permitted.sum(axis=1)
    action = np.where(permitted, rng.random(permitted.shape), -1.0).argmax(axis=1)
    reward = (rng.random(len(rows)) < world.true_prob[rows, action]).astype(np.float64)
    logged = LoggedDecisions(
        world.behaviour[rows], world.membership[rows], world.segments.ids, catalog.ids, catalog.category_code,
        catalog.priority, permitted, world.caution[rows], action.astype(np.intp), reward, 1.0 / n_perm,
    )
    plain = RankingPolicy(PolicyKind.BASELINE, baseline)
    weights = ScoreWeights({Component.BASELINE: 1.0, Component.PRIORITY: 0.001, NAME: weight})
    policies = {
        "segment baseline": WithComponent(plain, np.zeros_like(component)),
        "segment baseline + collab.": WithComponent(replace(plain, weights=weights), component),
    }
    inp = logged.ranking_input()
    truth = {name: float(p.expected_value(inp, world.true_prob[rows], rng=np.random.default_rng(seed)).mean())
             for name, p in policies.items()}
    estimates = {name: estimate(logged, p, seed=seed, n_boot=200)[0] for name, p in policies.items()}
    return Comparison(truth, estimates, history_per_patient, len(rows))
