"""A simulated patient population with hidden response probabilities, to run policies head to head.

The hidden model (never shown to the policies)::

    p(complete | patient i, nudge n) = sigmoid(base[n] + taste[type(i), category(n)]
                                               + affinity[type(i), n] + 0.5 · engagement[i])

Patients have a latent type. What the policies observe is what the build would: flags drawn from a
type-dependent profile (so segments carry partial information about the type), and event histories
driven by the patient's engagement (so behaviour features and learned clusters carry some too).
Eligibility comes from the real catalog rules; a small simulated guardrail set removes or marks
nudges. Every policy sees the same arrivals and the same reward noise (common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.batch import PatientBatch, PatientPrefs
from nudge_engine.personalization.candidates import eligibility
from nudge_engine.personalization.catalog import CATEGORIES, Catalog
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.features import compute_features
from nudge_engine.personalization.ranking import RankingInput
from nudge_engine.personalization.segment_spec import SegmentSpec
from nudge_engine.personalization.segments import SegmentModel, fit_behaviour_clusters

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DAY = 86_400


@dataclass(frozen=True, slots=True)
class WorldSettings:
    n_patients: int = 6000
    n_types: int = 8
    base_mean: float = -1.7  # overall completion around 15-20 %
    base_sd: float = 0.4
    taste_sd: float = 0.8  # type × category
    affinity_sd: float = 0.4  # type × nudge
    engagement_sd: float = 0.5
    signature_flags: int = 3  # flags that mark a type (seen with probability ``signature_rate``)
    signature_rate: float = 0.9
    background_a: float = 0.4  # other flags: Beta(a, b) prevalence per type
    background_b: float = 6.0
    seed: int = 20250601


@dataclass(frozen=True, slots=True)
class World:
    """Observed inputs per patient (what the policies see) and the hidden truth."""

    catalog: Catalog
    segments: SegmentModel
    behaviour: npt.NDArray[np.float64]
    membership: npt.NDArray[np.bool_]
    permitted: npt.NDArray[np.bool_]
    caution: npt.NDArray[np.bool_]
    true_prob: npt.NDArray[np.float64]  # hidden
    patient_type: npt.NDArray[np.int64]  # hidden
    settings: WorldSettings

    def __len__(self) -> int:
        return len(self.membership)

    def ranking_input(self, rows: npt.NDArray[np.intp]) -> RankingInput:
        return RankingInput(
            behaviour=self.behaviour[rows], membership=self.membership[rows], segment_ids=self.segments.ids,
            nudge_ids=self.catalog.ids, nudge_category=self.catalog.category_code, priority=self.catalog.priority,
            permitted=self.permitted[rows], caution=self.caution[rows],
        )

    def value(self, rows: npt.NDArray[np.intp], probs: npt.NDArray[np.float64]) -> float:
        """True expected reward of a policy with action probabilities ``probs`` on these arrivals."""
        return float((probs * self.true_prob[rows]).sum(axis=1).mean())

    def oracle_value(self, rows: npt.NDArray[np.intp]) -> float:
        return float(np.where(self.permitted[rows], self.true_prob[rows], 0.0).max(axis=1).mean())


def make_world(catalog: Catalog, spec: SegmentSpec, settings: WorldSettings | None = None) -> World:
    s = settings or WorldSettings()
    rng = np.random.default_rng(s.seed)
    n, t, n_cat = s.n_patients, s.n_types, len(CATEGORIES)
    ptype = rng.integers(0, t, n)
    flag_names = list(spec.flags)
    profile = rng.beta(s.background_a, s.background_b, (t, len(flag_names)))
    for k in range(t):  # each type has a few signature flags
        profile[k, rng.choice(len(flag_names), s.signature_flags, replace=False)] = s.signature_rate
    flags = {f: rng.random(n) < profile[ptype, j] for j, f in enumerate(flag_names)}
    type_engagement = rng.normal(0.0, 0.4, t)
    engagement = type_engagement[ptype] + rng.normal(0.0, s.engagement_sd, n)
    type_activity = rng.uniform(5.0, 40.0, t)

    events = _histories(rng, engagement, type_activity[ptype], catalog)
    programme = np.where(flags.get("has_t2d", np.zeros(n, bool)), "t2d_lifestyle",
                         np.where(flags.get("has_htn", np.zeros(n, bool)), "hypertension", ""))
    batch = PatientBatch(
        patient_idx=np.arange(n, dtype=np.int64), tz=np.full(n, "UTC"), locale=np.full(n, "en-US"),
        programme=programme, enrolled_at_s=NOW.timestamp() - rng.uniform(20, 400, n) * DAY, flags=flags,
        prefs=PatientPrefs.defaults(n), events=events,
    )
    features = compute_features(events, n_patients=n, enrolled_at_s=batch.enrolled_at_s, now_s=NOW.timestamp(),
                                settings=spec.features)
    segments = SegmentModel(spec, fit_behaviour_clusters(features, spec.clusters, now=NOW))
    membership = segments.assign(features, programme=programme, flags=flags)
    eligible = eligibility(batch, catalog, membership, segments.ids, NOW.timestamp())
    blocked, review, caution = _simulated_guardrails(catalog, flags, rng)

    cat = catalog.category_code.astype(np.int64)
    base = rng.normal(s.base_mean, s.base_sd, len(catalog))
    taste = rng.normal(0.0, s.taste_sd, (t, n_cat))
    affinity = rng.normal(0.0, s.affinity_sd, (t, len(catalog)))
    logit = base[None, :] + taste[ptype][:, cat] + affinity[ptype] + 0.5 * engagement[:, None]
    return World(
        catalog=catalog, segments=segments, behaviour=features.behaviour_matrix(), membership=membership,
        permitted=eligible & ~blocked & ~review, caution=caution & eligible & ~blocked & ~review,
        true_prob=1.0 / (1.0 + np.exp(-logit)), patient_type=ptype, settings=s,
    )


def _histories(
    rng: np.random.Generator, engagement: npt.NDArray[np.float64], activity: npt.NDArray[np.float64], catalog: Catalog
) -> EventColumns:
    n = len(engagement)
    counts = rng.poisson(np.exp(2.3 + 0.6 * engagement))
    rows = np.repeat(np.arange(n, dtype=np.int32), counts)
    e = engagement[rows]
    p_open = 1.0 / (1.0 + np.exp(-(e - 0.3)))
    u = rng.random(len(rows))
    kind = np.where(u < 0.45, EventType.DELIVERED, np.where(u < 0.45 + 0.3 * p_open, EventType.OPENED,
                    np.where(u < 0.85, EventType.COMPLETED, EventType.ACTIVITY))).astype(np.int8)
    nudge = rng.integers(0, len(catalog), len(rows)).astype(np.int32)
    nudge[kind == EventType.ACTIVITY] = -1
    category = np.where(nudge >= 0, catalog.category_code[np.maximum(nudge, 0)], 0).astype(np.int8)
    ts = (NOW.timestamp() - rng.uniform(0, 27 * DAY, len(rows))).astype(np.int64)
    minutes = np.where(kind == EventType.ACTIVITY, rng.gamma(2.0, activity[rows]), 0.0).astype(np.float32)
    return EventColumns(rows, kind, category, nudge, ts, minutes)


def _simulated_guardrails(
    catalog: Catalog, flags: Mapping[str, npt.NDArray[np.bool_]], rng: np.random.Generator
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Blocked, review and caution masks in the spirit of rules-spec §2 (not the real rule set)."""
    n = len(next(iter(flags.values())))
    tags = [set(e.tags) for e in catalog.entries]

    def has(*wanted: str) -> npt.NDArray[np.bool_]:
        return np.array([bool(set(wanted) & t) for t in tags])

    def flag(name: str) -> npt.NDArray[np.bool_]:
        return flags.get(name, np.zeros(n, dtype=bool))[:, None]

    vigorous = np.array([e.intensity == "vigorous" for e in catalog.entries])
    warfarin = (rng.random(n) < 0.05)[:, None]
    blocked = (has("sauna") & has("alcohol_permissive"))[None, :] | (flag("has_ckd") & has("potassium_rich",
                                                                                         "salt_substitute"))
    review = (flag("has_hf") & has("fluid_increase")) | ((flag("has_chd") | flag("has_hf")) & vigorous)
    review |= flag("has_t2d") & has("intermittent_fasting", "extended_fast", "meal_skipping")
    caution = (warfarin & has("vitamin_k_rich")) | (flag("has_t2d") & vigorous)
    return np.broadcast_to(blocked, (n, len(catalog))), review, caution


class Runner(Protocol):
    """A policy in the simulator: choose for a batch of arrivals, then learn from their rewards."""

    def choose(self, world: World, rows: npt.NDArray[np.intp], rng: np.random.Generator) -> tuple[
        npt.NDArray[np.intp], npt.NDArray[np.float64]
    ]: ...

    def learn(
        self, world: World, rows: npt.NDArray[np.intp], actions: npt.NDArray[np.intp], rewards: npt.NDArray[np.float64]
    ) -> None: ...


@dataclass
class Log:
    """Everything a policy did in a run: enough for off-policy evaluation."""

    rows: list[npt.NDArray[np.intp]] = field(default_factory=list)
    actions: list[npt.NDArray[np.intp]] = field(default_factory=list)
    rewards: list[npt.NDArray[np.float64]] = field(default_factory=list)
    propensities: list[npt.NDArray[np.float64]] = field(default_factory=list)
    expected: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def cat(self, name: str) -> npt.NDArray[np.float64]:
        parts: list[npt.NDArray[np.float64]] = getattr(self, name)
        return np.concatenate(parts) if parts else np.zeros(0)


def arrivals(world: World, n_decisions: int, seed: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Who arrives at each decision (patients with at least one permitted nudge), and the reward noise."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(world.permitted.any(axis=1))
    return rng.choice(pool, n_decisions), rng.random(n_decisions)


def run(
    world: World,
    runners: Mapping[str, Runner],
    *,
    n_decisions: int,
    batch_size: int = 1000,
    seed: int = 1,
) -> dict[str, Log]:
    """Run every policy on the same arrivals and reward noise; each learns after every batch."""
    rows_all, noise = arrivals(world, n_decisions, seed)
    logs = {name: Log() for name in runners}
    for name, runner in runners.items():
        rng = np.random.default_rng([seed, len(name)])
        log = logs[name]
        for lo in range(0, n_decisions, batch_size):
            rows = rows_all[lo : lo + batch_size]
            actions, propensity = runner.choose(world, rows, rng)
            p = world.true_prob[rows, actions]
            rewards = (noise[lo : lo + batch_size] < p).astype(np.float64)
            runner.learn(world, rows, actions, rewards)
            log.rows.append(rows)
            log.actions.append(actions)
            log.rewards.append(rewards)
            log.propensities.append(propensity)
            log.expected.append(p)
    return logs
