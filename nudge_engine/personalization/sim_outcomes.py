"""Simulated health outcomes that differ from the tendency to open: engagement vs agenda-driven, same run.

Extends the simulator's world (:func:`simulator.make_world`) with, hidden from the policies::

    p(open    | i, n) = sigmoid(-0.5 + appeal[n] + open_tendency[i])
    p(healthy | i, n) = sigmoid(-2.4 + 2.5 · agenda[i, n] + impact[n] + 0.5 · readiness[i] + taste[type(i), cat(n)])

``open_tendency`` and ``readiness`` are independent, and a nudge's ``appeal`` (eye-catching recipes,
education, mood check-ins) runs against its ``impact``; the healthy behaviour is most likely when the
nudge serves what the patient's programme stage prioritises (``agenda``, the clinicians' knowledge).

Each decision's events (delivered, opened, completed = the behaviour done) are turned into rewards by
:func:`rewards.outcome_rewards`, exactly as the retraining job does. Every policy sees the same
arrivals and the same random numbers (common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.agenda import patient_weights, stage_indices
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import CATEGORIES
from nudge_engine.personalization.context import context_matrix, context_names
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.programmes import ProgrammeSet
from nudge_engine.personalization.ranking import KIND_WEIGHTS, PolicyKind, RankingInput, RankingPolicy
from nudge_engine.personalization.rewards import ServedDecisions, outcome_rewards
from nudge_engine.personalization.scoring import Component
from nudge_engine.personalization.simulator import NOW, World, arrivals

DAY = 86_400
APPEAL_BY_CATEGORY: Mapping[Category, float] = {
    Category.EDUCATION: 0.9, Category.MENTAL_HEALTH: 0.6, Category.ONBOARDING: 0.6, Category.DIET: 0.4,
    Category.HEAT_THERAPY: 0.5, Category.ALCOHOL: 0.3, Category.MEDICATION: -0.4, Category.EXERCISE: -0.3,
}


@dataclass(frozen=True, slots=True)
class OutcomeWorld:
    """The simulator's world plus programmes, stages and the hidden open and health-behaviour probabilities."""

    world: World
    programmes: ProgrammeSet
    programme: npt.NDArray[np.str_]  # (P,)
    agenda: npt.NDArray[np.float64]  # (P, N) stage priority, what the agenda component shows the policies
    p_open: npt.NDArray[np.float64]  # (P, N) hidden
    p_healthy: npt.NDArray[np.float64]  # (P, N) hidden

    def ranking_input(self, rows: npt.NDArray[np.intp], *, agenda: bool,
                      weights: Mapping[str, npt.NDArray[np.float64]] | None = None) -> RankingInput:
        base = self.world.ranking_input(rows)
        if not agenda:
            return base
        return RankingInput(
            behaviour=base.behaviour, membership=base.membership, segment_ids=base.segment_ids,
            nudge_ids=base.nudge_ids, nudge_category=base.nudge_category, priority=base.priority,
            permitted=base.permitted, caution=base.caution, extra={Component.AGENDA: self.agenda[rows]},
            weights={k: v[rows] for k, v in (weights or {}).items()},
        )


def make_outcome_world(world: World, programmes: ProgrammeSet, *, seed: int = 7) -> OutcomeWorld:
    rng = np.random.default_rng(seed)
    n, catalog = len(world), world.catalog
    ids = sorted(programmes)
    # As make_world enrols them (t2d first, then hypertension); everybody else joins one at random.
    programme = np.array(ids, dtype=np.str_)[rng.integers(0, len(ids), n)]
    seg = {s: j for j, s in enumerate(world.segments.ids)}
    for segment, pid in (("hypertension", "hypertension"), ("t2d", "t2d_lifestyle")):
        if segment in seg and pid in programmes:
            programme[world.membership[:, seg[segment]]] = pid
    enrolled = NOW.timestamp() - rng.uniform(0, 140, n) * DAY
    agenda = np.zeros((n, len(catalog)))
    for pid in ids:
        rows = np.flatnonzero(programme == pid)
        stage, _, _ = stage_indices(programmes[pid], enrolled[rows], EventColumns.empty(), NOW.timestamp())
        agenda[rows] = programmes[pid].stage_priority[stage]
    cat = catalog.category_code.astype(np.intp)
    impact = rng.normal(0.0, 0.4, len(catalog))
    category_appeal = np.array([APPEAL_BY_CATEGORY.get(c, 0.0) for c in CATEGORIES])
    appeal = category_appeal[cat] - 0.8 * impact + rng.normal(0.0, 0.3, len(catalog))
    open_tendency = rng.normal(0.0, 1.0, n)
    readiness = rng.normal(0.0, 1.0, n)  # independent of the open tendency
    taste = rng.normal(0.0, 0.3, (world.settings.n_types, len(CATEGORIES)))
    p_open = _sigmoid(-0.5 + appeal[None, :] + open_tendency[:, None])
    p_healthy = _sigmoid(-2.4 + 2.5 * agenda + impact[None, :] + 0.5 * readiness[:, None]
                         + taste[world.patient_type][:, cat])
    return OutcomeWorld(world, programmes, programme, agenda, p_open, p_healthy)


class Objective(StrEnum):
    OPENS = "opens"  # the engagement-optimising policy: learns from opens
    HEALTH = "health"  # learns from the health-outcome reward (rewards.py)


class OutcomeRunner:
    """A Thompson bandit learning from ``objective``, with or without the agenda component and programme weights."""

    def __init__(
        self, ow: OutcomeWorld, objective: Objective, *, agenda: bool, exploration_floor: float = 0.05
    ) -> None:
        w = ow.world
        self.objective, self.agenda, self.exploration_floor = objective, agenda, exploration_floor
        self.baseline = SegmentBaseline.empty(w.segments.ids, w.catalog.ids)
        self.bandit = LinearThompson(context_names(w.segments.ids), w.catalog.ids, w.catalog.category_code)
        base = KIND_WEIGHTS[PolicyKind.BANDIT]
        self.weights = patient_weights(ow.programme, ow.programmes, base) if agenda else None

    def choose(self, ow: OutcomeWorld, rows: npt.NDArray[np.intp], rng: np.random.Generator) -> npt.NDArray[np.intp]:
        policy = RankingPolicy(PolicyKind.BANDIT, self.baseline, self.bandit, exploration_floor=self.exploration_floor)
        ranking = policy.rank(ow.ranking_input(rows, agenda=self.agenda, weights=self.weights), rng=rng, k=1)
        return ranking.chosen[:, 0]

    def learn(self, ow: OutcomeWorld, rows: npt.NDArray[np.intp], actions: npt.NDArray[np.intp],
              reward: npt.NDArray[np.float64], opened: npt.NDArray[np.bool_]) -> None:
        target = reward if self.objective is Objective.HEALTH else opened.astype(np.float64)
        w = ow.world
        self.baseline = self.baseline.fit(w.membership[rows], actions, target, now=NOW)
        x = context_matrix(self.bandit.feature_names, behaviour=w.behaviour[rows], membership=w.membership[rows],
                           segment_ids=w.segments.ids)
        self.bandit = self.bandit.update(x, actions, target, now=NOW)


@dataclass
class OutcomeLog:
    opened: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    healthy: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    reward: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def summary(self, *, last: int | None = None) -> dict[str, Any]:
        """Opens and healthy behaviours per 100 decisions with 95 % intervals (normal approximation)."""
        out: dict[str, Any] = {}
        for name in ("opened", "healthy"):
            x = np.concatenate(getattr(self, name)).astype(np.float64)
            x = x[-last:] if last else x
            m, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))
            out[name] = {"per_100": 100 * m, "low": 100 * (m - 1.96 * se), "high": 100 * (m + 1.96 * se)}
        out["decisions"] = int(sum(len(a) for a in self.opened))
        return out


def run_outcomes(
    ow: OutcomeWorld, runners: Mapping[str, OutcomeRunner], *, n_decisions: int, batch_size: int = 1000, seed: int = 1
) -> dict[str, OutcomeLog]:
    """Every policy on the same arrivals and random numbers; rewards from simulated events via rewards.py."""
    rows_all, u_open = arrivals(ow.world, n_decisions, seed)
    u_healthy = np.random.default_rng([seed, 99]).random(n_decisions)
    logs = {name: OutcomeLog() for name in runners}
    for k, (name, runner) in enumerate(runners.items()):
        rng = np.random.default_rng([seed, k])
        for lo in range(0, n_decisions, batch_size):
            rows = rows_all[lo : lo + batch_size]
            actions = runner.choose(ow, rows, rng)
            opened = u_open[lo : lo + batch_size] < ow.p_open[rows, actions]
            healthy_done = u_healthy[lo : lo + batch_size] < ow.p_healthy[rows, actions]
            served_s = NOW.timestamp() + np.arange(len(rows), dtype=np.float64)
            events = _decision_events(actions, served_s, opened, healthy_done, ow)
            dec = ServedDecisions(np.arange(len(rows), dtype=np.int32), actions.astype(np.int32), served_s,
                                  ow.programme[rows])
            outcomes = outcome_rewards(dec, events, ow.programmes, ow.world.catalog)
            runner.learn(ow, rows, actions, outcomes.reward, outcomes.opened)
            logs[name].opened.append(outcomes.opened)
            logs[name].healthy.append(outcomes.reward > 0)
            logs[name].reward.append(outcomes.reward)
    return logs


def _decision_events(
    actions: npt.NDArray[np.intp], served_s: npt.NDArray[np.float64], opened: npt.NDArray[np.bool_],
    done: npt.NDArray[np.bool_], ow: OutcomeWorld,
) -> EventColumns:
    """Per decision (numbered 0..k-1): delivered, opened if opened, completed (the behaviour done) if done."""
    d = np.arange(len(actions), dtype=np.int32)
    parts = [(d, EventType.DELIVERED, 0), (d[opened], EventType.OPENED, 600), (d[done], EventType.COMPLETED, 3600)]
    row = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in parts])
    ts = np.concatenate([served_s[p[0]] + p[2] for p in parts]).astype(np.int64)
    nudge = actions[row].astype(np.int32)
    cat = ow.world.catalog.category_code[nudge]
    return EventColumns(row, kind, cat, nudge, ts, np.zeros(len(row), np.float32))


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out

