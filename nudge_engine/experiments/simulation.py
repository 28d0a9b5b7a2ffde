"""Simulated weeks on the stored cohort: a build each simulated day, patients responding, experiments running.

Each simulated day ``t``:

1. the build cycle runs with the clock at ``t`` (the real :class:`BuildCycle`, all guardrails);
2. experiments are assigned (:func:`assign`) and assignments and first exposures recorded: a patient
   is exposed when the build made at least one guardrail-permitted nudge ready for him;
3. the app serves each patient's best ready nudge (held-out patients get only safety-relevant ones),
   and the patient responds according to :class:`ResponseModel` (delivered, opened, completed events
   and daily activity minutes, each with its audit record, as the events API would write them);
4. every 7 days the ranking models are retrained (the scheduler's ``retrain`` job).

What can be planted (:class:`Plant`): an arm effect (added completion probability per delivered
nudge), a harm in one segment of one arm, a broken traffic split (arms assigned with other weights
than the file declares: the sample-ratio check must notice), and drift (activity minutes reported
``drift_factor`` times larger from ``drift_from_day`` on, as after a device-integration change).

Timings on the 2-core reference machine: about 3.5 s per simulated day per 1,000 patients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import select, update

from nudge_engine.adapters.bulk import bulk_insert
from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import PatientDecisionRow, PatientEventRow, PatientRow, ReadyNudgeRow, new_id
from nudge_engine.audit.trail import AuditEvent
from nudge_engine.domain.context import PatientContext
from nudge_engine.experiments.assignment import ArmAssignment, assign, safe_nudges
from nudge_engine.experiments.loader import load_experiments
from nudge_engine.experiments.model import ExperimentsConfig
from nudge_engine.experiments.repository import record_assignments
from nudge_engine.experiments.responses import ResponseModel
from nudge_engine.logs import get_logger
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.build.flags import segment_flags
from nudge_engine.services.retraining import retrain_models

if TYPE_CHECKING:
    from nudge_engine.bootstrap import Container

log = get_logger(__name__)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Plant:
    """Known effects to plant, so the analysis and the monitors can be checked against the truth."""

    effect: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (experiment, arm) -> Δ p(complete)
    # (experiment, arm, segment, factor): p(complete) multiplied by ``factor`` (< 1) in that segment and arm
    harm: tuple[str, str, str, float] | None = None
    split: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # experiment -> actual arm weights
    drift_from_day: int | None = None
    drift_factor: float = 2.5


@dataclass
class SimulationResult:
    start: datetime
    end: datetime
    days: int
    patients: int
    cycles: list[str] = field(default_factory=list)
    served: int = 0
    opened: int = 0
    completed: int = 0
    withheld: int = 0
    # (experiment, arm) -> mean planted change of p(complete) over that arm's delivered nudges (the truth)
    true_effect: dict[tuple[str, str], float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days,
            "patients": self.patients, "cycles": len(self.cycles), "served": self.served, "opened": self.opened,
            "completed": self.completed, "withheld_by_holdout": self.withheld,
            "true_effect": {f"{e}:{a}": round(v, 4) for (e, a), v in self.true_effect.items()},
        }


class _Served(NamedTuple):
    row: Any  # the ready nudge (id, patient_id, nudge_id, score)
    patient_row: int

    @property
    def nudge_id(self) -> str:
        return str(self.row.nudge_id)

    @property
    def id(self) -> str:
        return str(self.row.id)


class _SimClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def simulate_weeks(
    container: Container,
    *,
    weeks: int = 2,
    days: int | None = None,
    seed: int = 20251201,
    plant: Plant | None = None,
    experiments: ExperimentsConfig | None = None,
    start: datetime | None = None,
    retrain_every_days: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Run ``days`` (default ``7 * weeks``) simulated days from ``start`` (default: the container's clock).

    The container's clock is replaced by the simulated one while this runs and restored afterwards.
    """
    plant = plant or Plant()
    declared = experiments or load_experiments()
    actual = declared
    for experiment_id, weights in plant.split.items():
        actual = actual.replace_experiment(declared.experiment(experiment_id).with_weights(dict(weights)))
    n_days = days if days is not None else 7 * weeks
    t0 = start or container.clock()
    clock = _SimClock(t0)
    saved_clock = container.clock
    saved_experiments = container.__dict__.get("experiments")
    container.clock = clock
    # The build assigns arms itself: a planted split mismatch is a broken deployment of the declared
    # experiments, so the build runs with the actual (broken) weights while the analysis keeps the declared ones.
    container.__dict__["experiments"] = actual
    try:
        return _run(container, clock, declared=declared, actual=actual, plant=plant, n_days=n_days, seed=seed,
                    retrain_every_days=retrain_every_days, progress=progress)
    finally:
        container.clock = saved_clock
        if saved_experiments is None:
            container.__dict__.pop("experiments", None)
        else:
            container.__dict__["experiments"] = saved_experiments


@dataclass
class _Sim:
    """What every simulated day needs."""

    container: Container
    declared: ExperimentsConfig
    model: ResponseModel
    safe: np.ndarray[Any, np.dtype[np.bool_]]
    nudge_index: dict[str, int]
    plant: Plant
    rng: np.random.Generator
    result: SimulationResult
    increments: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def _run(
    container: Container,
    clock: _SimClock,
    *,
    declared: ExperimentsConfig,
    actual: ExperimentsConfig,
    plant: Plant,
    n_days: int,
    seed: int,
    retrain_every_days: int,
    progress: Callable[[int, int], None] | None,
) -> SimulationResult:
    catalog = container.catalog
    t0 = clock.at
    with container.uow() as uow:
        patients = uow.session.execute(
            select(PatientRow.id, PatientRow.programme)
            .where(PatientRow.erased_at.is_(None), PatientRow.deceased.is_(False)).order_by(PatientRow.id)
        ).all()
        ids = [p.id for p in patients]
        contexts = load_contexts(uow.session, ids)
    flags = segment_flags([contexts.get(pid, PatientContext()) for pid in ids], t0)
    programmes = np.array([p.programme or "" for p in patients], dtype=np.str_)
    sim = _Sim(
        container, declared, ResponseModel.draw(ids, catalog, seed=seed),
        safe_nudges([str(e.category) for e in catalog.entries], [tuple(e.tags) for e in catalog.entries]),
        {nid: i for i, nid in enumerate(catalog.ids)}, plant, np.random.default_rng(seed),
        SimulationResult(t0, t0 + n_days * DAY, n_days, len(ids)),
    )
    for day in range(n_days):
        clock.at = t0 + day * DAY
        summary = build_cycle(container, worker="simulator").run()
        sim.result.cycles.append(summary.cycle_id)
        assignment = assign(actual, ids, programmes=programmes, flags=flags, now=clock.at)
        _day(sim, clock.at, summary.cycle_id, assignment, day)
        if retrain_every_days and (day + 1) % retrain_every_days == 0:
            retrain_models(container.uow, audit=container.audit, catalog=catalog, segments=container.segments,
                           programmes=container.programmes, now=clock.at + timedelta(hours=23))
        if progress:
            progress(day + 1, n_days)
    for key, values in sim.increments.items():
        sim.result.true_effect[key] = float(np.mean(values)) if values else 0.0
    clock.at = sim.result.end
    log.info("simulation_done", days=n_days, patients=len(ids), served=sim.result.served,
             completed=sim.result.completed)
    return sim.result


def _day(sim: _Sim, now: datetime, cycle_id: str, assignment: ArmAssignment, day: int) -> None:
    with sim.container.uow() as uow:
        session = uow.session
        decisions = {
            d.patient_id: d for d in session.execute(
                select(PatientDecisionRow.patient_id, PatientDecisionRow.chosen, PatientDecisionRow.segments)
                .where(PatientDecisionRow.cycle_id == cycle_id)
            )
        }
        exposed = np.array([bool(decisions[p].chosen) if p in decisions else False for p in assignment.patient_ids])
        record_assignments(session, sim.declared, assignment, exposed=exposed, now=now)
        ready = session.execute(
            select(ReadyNudgeRow.id, ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id, ReadyNudgeRow.score)
            .where(ReadyNudgeRow.status == "ready", ReadyNudgeRow.expires_at > now)
            .order_by(ReadyNudgeRow.patient_id, ReadyNudgeRow.score.desc(), ReadyNudgeRow.id)
        ).all()
        best = _what_the_app_serves(sim, ready, assignment)
        events: list[dict[str, Any]] = []
        audit: list[AuditEvent] = []
        for pid in sorted(best):
            segments = set(decisions[pid].segments or ()) if pid in decisions else set()
            _respond(sim, pid, best[pid].nudge_id, arms=assignment.arms_of(best[pid].patient_row),
                     segments=segments, now=now, events=events, audit=audit)
        _activity(sim, assignment.patient_ids, now=now, day=day, events=events, audit=audit)
        served_ids = [b.id for b in best.values()]
        for k in range(0, len(served_ids), 500):
            session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id.in_(served_ids[k : k + 500]))
                            .values(status="served", served_at=now + timedelta(minutes=30)))
        bulk_insert(session, PatientEventRow, events)
        sim.container.audit.append(session, audit, now=now + timedelta(hours=9))
        uow.commit()


def _what_the_app_serves(sim: _Sim, ready: Sequence[Any], assignment: ArmAssignment) -> dict[str, Any]:
    """Each patient's best ready nudge; held-out patients only get safety-relevant ones."""
    row_of = {pid: i for i, pid in enumerate(assignment.patient_ids)}
    best: dict[str, Any] = {}
    for r in ready:
        if r.patient_id in best or r.patient_id not in row_of or r.nudge_id not in sim.nudge_index:
            continue
        i = row_of[r.patient_id]
        if assignment.held_out[i] and not sim.safe[sim.nudge_index[r.nudge_id]]:
            sim.result.withheld += 1
            continue
        best[r.patient_id] = _Served(r, i)
    return best


def _respond(
    sim: _Sim, pid: str, nudge_id: str, *, arms: dict[str, str], segments: set[str], now: datetime,
    events: list[dict[str, Any]], audit: list[AuditEvent],
) -> None:
    p = sim.model.completion_probability(pid, sim.nudge_index[nudge_id])
    parts = _planted(sim.plant, arms, segments, p)
    p_new = min(1.0, p + sum(parts.values()))
    for key in arms.items():
        sim.increments.setdefault(key, []).append(parts.get(key, 0.0))
    at = now + timedelta(minutes=float(sim.rng.uniform(30, 360)))
    p_open = max(p_new, sim.model.open_probability(pid))
    opened = sim.rng.random() < p_open
    completed = opened and sim.rng.random() < (p_new / p_open if p_open > 0 else 0.0)
    kinds = ["delivered"] + (["opened"] if opened else []) + (["completed"] if completed else [])
    for k, kind in enumerate(kinds):
        events.append(_event(pid, kind, nudge_id, at + timedelta(minutes=20 * k), {}))
        audit.append(AuditEvent(kind, "service", patient_ref=pid, nudge_id=nudge_id))
    sim.result.served += 1
    sim.result.opened += int(opened)
    sim.result.completed += int(completed)


def _activity(
    sim: _Sim, ids: Sequence[str], *, now: datetime, day: int, events: list[dict[str, Any]],
    audit: list[AuditEvent],
) -> None:
    drifted = sim.plant.drift_from_day is not None and day >= sim.plant.drift_from_day
    for pid in ids:
        rate, mean_minutes = sim.model.activity_rate(pid)
        if sim.rng.random() >= rate:
            continue
        minutes = float(sim.rng.gamma(2.0, mean_minutes / 2.0)) * (sim.plant.drift_factor if drifted else 1.0)
        events.append(_event(pid, "activity", None, now + timedelta(hours=float(sim.rng.uniform(1, 8))),
                             {"minutes": round(minutes, 1)}))
        audit.append(AuditEvent("activity", "service", patient_ref=pid, details={"minutes": round(minutes)}))


def _event(pid: str, kind: str, nudge_id: str | None, at: datetime, properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_id(), "patient_id": pid, "type": kind, "nudge_id": nudge_id, "session_id": None,
            "occurred_at": at, "received_at": at + timedelta(seconds=30), "properties": properties,
            "idempotency_key": None, "response": {}}


def _planted(plant: Plant, arms: Mapping[str, str], segments: set[str], p: float) -> dict[tuple[str, str], float]:
    """Each experiment arm's own change of p(complete): an added effect, or a harm factor in its segment."""
    parts: dict[tuple[str, str], float] = {}
    for key in arms.items():
        harm = plant.harm
        if harm is not None and key == harm[:2] and harm[2] in segments:
            parts[key] = p * (harm[3] - 1.0)
        elif key in plant.effect:
            parts[key] = plant.effect[key]
    return parts
