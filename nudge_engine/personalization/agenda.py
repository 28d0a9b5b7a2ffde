"""Agenda-driven ranking: programme stages, the agenda score components, late-binding weights, why a nudge won.

Per batch the build calls, next to :func:`pipeline.plan_batch`::

    comps = agenda_components(batch, catalog, programmes, now, similarity=sim)    # name -> (P, N)
    weights = patient_weights(batch.programme, programmes, policy.score_weights,
                              overrides=parse_weight_overrides("agenda:2,novelty:0.5"))
    plan = plan_batch(..., extra_components=comps, row_weights=weights,
                      near_duplicate=near_duplicates(batch, sim, now))

Components (each in [0, 1], see :class:`scoring.Component`): ``agenda`` (clinical priority of what
the nudge serves in the patient's current stage), ``freshness``, ``novelty`` and ``more_like_this``;
the policy adds ``predicted`` (the bandit, trained on health-outcome rewards), ``baseline`` (segment
popularity: the smoothed segment × nudge rate) and ``priority``.

Weights bind late, per patient: the policy's defaults, replaced by the weights of the patient's
programme, replaced by the request's overrides (:data:`OVERRIDE_FORMAT`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.programmes import MAX_WEIGHT, Programme, ProgrammeSet
from nudge_engine.personalization.scoring import COMPONENT_NAMES, Component, ScoreWeights
from nudge_engine.personalization.similarity import NEAR_DUPLICATE, ContentSimilarity

DAY = 86_400.0
FRESHNESS_DAYS = 14.0  # freshness = 1 - exp(-days since last delivery / FRESHNESS_DAYS)
NOVELTY_DAYS = 14.0  # novelty compares with what was delivered in this many days
MORE_LIKE_THIS_DAYS = 7.0  # "more like this" follows a completion at most this old
OVERRIDE_FORMAT = (
    "comma-separated component:weight pairs, e.g. 'agenda:2,novelty:0.5'; components: "
    + ", ".join(sorted(COMPONENT_NAMES)) + f"; weights between 0 and {MAX_WEIGHT:g}"
)
AGENDA_COMPONENTS = (Component.AGENDA, Component.FRESHNESS, Component.NOVELTY, Component.MORE_LIKE_THIS)

_FITTED: dict[str, ContentSimilarity] = {}


# ---------------------------------------------------------------------------------------------- stages
@dataclass(frozen=True, slots=True)
class StageState:
    """Where one patient stands in a programme."""

    programme: str
    version: str
    index: int
    stage: str
    entered_at_s: float
    early: bool  # entered by progress (advance_when) rather than by the calendar

    def record(self) -> dict[str, Any]:
        return {"programme": self.programme, "version": self.version, "stage": self.stage, "early": self.early}


def behaviour_done(programme: Programme, events: EventColumns) -> npt.NDArray[np.bool_]:
    """(events × behaviours): the event is the behaviour done (a completed serving nudge, or enough activity)."""
    completed = (events.type_code == EventType.COMPLETED) & (events.nudge_idx >= 0)
    safe = np.clip(events.nudge_idx, 0, programme.serves.shape[1] - 1)
    by_nudge = programme.serves[:, safe].T & completed[:, None]
    activity = (events.type_code == EventType.ACTIVITY)[:, None] & (
        events.minutes[:, None] >= programme.activity_min_minutes[None, :]
    )
    out: npt.NDArray[np.bool_] = by_nudge | activity
    return out


def stage_entries(
    programme: Programme, enrolled_at_s: npt.NDArray[np.float64], events: EventColumns, now_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(P, S) time each patient entered each stage (inf: not yet) and whether by progress.

    Stage ``s+1`` begins at its calendar week or, when the stage has ``advance_when``, at the
    ``times``-th time its behaviour was done since stage ``s`` began, whichever is first. Only the
    events given count (the build loads the feature window), and none after ``now_s``.
    """
    n_p, n_s = len(enrolled_at_s), len(programme.stage_ids)
    entered = np.full((n_p, n_s), np.inf)
    early = np.zeros((n_p, n_s), dtype=bool)
    entered[:, 0] = enrolled_at_s
    done = behaviour_done(programme, events) if len(events) else np.zeros((0, len(programme.behaviour_ids)), bool)
    rows = events.patient_row.astype(np.intp)
    for s in range(n_s - 1):
        calendar = enrolled_at_s + programme.stage_start_s[s + 1]
        progress = np.full(n_p, np.inf)
        b = int(programme.advance_behaviour[s])
        if b >= 0 and len(events):
            hit = done[:, b] & (events.ts >= entered[rows, s]) & (events.ts <= now_s)
            progress = _nth_time(rows[hit], events.ts[hit].astype(np.float64), int(programme.advance_times[s]), n_p)
        entered[:, s + 1] = np.minimum(calendar, progress)
        early[:, s + 1] = progress < calendar
    return entered, early


def stage_indices(
    programme: Programme, enrolled_at_s: npt.NDArray[np.float64], events: EventColumns, now_s: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(P,) current stage, the time it was entered and whether early; stage 0 before enrolment too."""
    entered, early = stage_entries(programme, enrolled_at_s, events, now_s)
    current = np.maximum((entered <= now_s).sum(axis=1) - 1, 0).astype(np.intp)
    rows = np.arange(len(current))
    return current, entered[rows, current], early[rows, current]


def stage_of(programme: Programme, enrolled_at: datetime, events: EventColumns, now: datetime) -> StageState:
    """The stage of one patient (all ``events`` are theirs) at ``now``: a pure function."""
    if enrolled_at.tzinfo is None or now.tzinfo is None:
        raise InvalidInput("stage_of: field 'now': needs a time zone")
    mine = EventColumns(np.zeros(len(events), np.int32), events.type_code, events.category_code, events.nudge_idx,
                        events.ts, events.minutes)
    idx, at, early = stage_indices(programme, np.array([enrolled_at.timestamp()]), mine, now.timestamp())
    i = int(idx[0])
    return StageState(programme.id, programme.version, i, programme.stage_ids[i], float(at[0]), bool(early[0]))


@dataclass(frozen=True, slots=True)
class PatientStages:
    """Programme and stage of every patient of a batch (stage -1 for no or an unknown programme)."""

    programme: npt.NDArray[np.str_]
    stage: npt.NDArray[np.intp]
    early: npt.NDArray[np.bool_]
    programmes: ProgrammeSet

    def record(self, row: int) -> dict[str, Any] | None:
        """What the decision record stores about the agenda: programme, version, stage."""
        pid = str(self.programme[row])
        if self.stage[row] < 0:
            return None
        p = self.programmes[pid]
        return {"programme": pid, "version": p.version, "stage": p.stage_ids[int(self.stage[row])],
                "early": bool(self.early[row])}


def patient_stages(batch: PatientBatch, programmes: ProgrammeSet, now: datetime) -> PatientStages:
    n = len(batch)
    stage = np.full(n, -1, dtype=np.intp)
    early = np.zeros(n, dtype=bool)
    for pid, programme in programmes.items():
        rows = np.flatnonzero(batch.programme == pid)
        if len(rows) == 0:
            continue
        events = _events_of(batch.events, rows, n)
        idx, _, e = stage_indices(programme, batch.enrolled_at_s[rows], events, now.timestamp())
        stage[rows], early[rows] = idx, e
    return PatientStages(batch.programme, stage, early, programmes)


# ------------------------------------------------------------------------------------------ components
def content_similarity(catalog: Catalog) -> ContentSimilarity:
    """The catalog's embeddings, fitted once per catalog digest in this process."""
    sim = _FITTED.get(catalog.digest)
    if sim is None:
        sim = _FITTED[catalog.digest] = ContentSimilarity.fit(catalog)
    return sim


def agenda_components(
    batch: PatientBatch,
    catalog: Catalog,
    programmes: ProgrammeSet,
    now: datetime,
    *,
    similarity: ContentSimilarity | None = None,
    stages: PatientStages | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """The agenda components of every (patient, nudge), each in [0, 1], for ``plan_batch(extra_components=...)``."""
    if programmes.catalog_digest != catalog.digest:
        raise InvalidInput("agenda_components: field 'programmes': compiled against another catalog")
    sim = similarity or content_similarity(catalog)
    n_p, n_n = len(batch), len(catalog)
    now_s = now.timestamp()
    st = stages or patient_stages(batch, programmes, now)
    agenda = np.zeros((n_p, n_n))
    for pid, programme in programmes.items():
        rows = np.flatnonzero((batch.programme == pid) & (st.stage >= 0))
        agenda[rows] = programme.stage_priority[st.stage[rows]]

    ev = batch.events
    seen = ev.ts <= now_s
    delivered = seen & (ev.type_code == EventType.DELIVERED) & (ev.nudge_idx >= 0)
    last = np.full((n_p, n_n), -np.inf)
    np.maximum.at(last, (ev.patient_row[delivered], ev.nudge_idx[delivered]), ev.ts[delivered].astype(np.float64))
    freshness = 1.0 - np.exp(-np.maximum(now_s - last, 0.0) / (FRESHNESS_DAYS * DAY))

    recent = delivered & (now_s - ev.ts < NOVELTY_DAYS * DAY)
    closest = np.zeros((n_p, n_n))
    np.maximum.at(closest, ev.patient_row[recent], np.maximum(sim.cosine[ev.nudge_idx[recent]], 0.0))
    novelty = 1.0 - closest

    done = seen & (ev.type_code == EventType.COMPLETED) & (ev.nudge_idx >= 0)
    done &= now_s - ev.ts < MORE_LIKE_THIS_DAYS * DAY
    last_done = _latest_nudge(ev.patient_row[done], ev.ts[done], ev.nudge_idx[done], n_p)
    more = np.zeros((n_p, n_n))
    has = last_done >= 0
    more[has] = np.maximum(sim.cosine[last_done[has]], 0.0)
    more[np.flatnonzero(has), last_done[has]] = 0.0  # the same nudge again is not "more like this"
    return {Component.AGENDA: agenda, Component.FRESHNESS: freshness, Component.NOVELTY: novelty,
            Component.MORE_LIKE_THIS: more}


def near_duplicates(
    batch: PatientBatch, similarity: ContentSimilarity, now: datetime, *, threshold: float = NEAR_DUPLICATE
) -> npt.NDArray[np.bool_]:
    """(P, N): nudges too similar to the one delivered last (the diversity constraint).

    The nudge itself is left to its cooldown; these pairs are dropped with reason ``near_duplicate``.
    """
    ev = batch.events
    delivered = (ev.ts <= now.timestamp()) & (ev.type_code == EventType.DELIVERED) & (ev.nudge_idx >= 0)
    last = _latest_nudge(ev.patient_row[delivered], ev.ts[delivered], ev.nudge_idx[delivered], len(batch))
    out = np.zeros((len(batch), len(similarity.nudge_ids)), dtype=bool)
    has = last >= 0
    out[has] = similarity.near_duplicates(threshold)[last[has]]
    return out


# --------------------------------------------------------------------------------------------- weights
def parse_weight_overrides(text: str | None) -> dict[str, float]:
    """Parse a request's weight overrides (:data:`OVERRIDE_FORMAT`); ``None`` or '' gives no overrides.

    A component named twice takes its last value, as repeated query parameters do."""
    if text is None or not text.strip():
        return {}
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, raw = (part.strip() for part in item.partition(":"))
        if not sep or not name:
            raise InvalidInput(f"weights: field '{item.strip() or '-'}': expected component:weight ({OVERRIDE_FORMAT})")
        if name not in COMPONENT_NAMES:
            raise InvalidInput(f"weights: field '{name}': unknown score component ({OVERRIDE_FORMAT})")
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(f"weights: field '{name}': '{raw}' is not a number") from None
        if not (math.isfinite(value) and 0.0 <= value <= MAX_WEIGHT):
            raise InvalidInput(f"weights: field '{name}': must be between 0 and {MAX_WEIGHT:g}")
        out[name] = value
    return out


def programme_weights(programmes: ProgrammeSet, base: ScoreWeights) -> dict[str, ScoreWeights]:
    """Programme id -> its weights: ``base`` with the programme's own weights applied."""
    return {pid: base.with_overrides(p.weights) for pid, p in programmes.items()}


def patient_weights(
    programme_of_row: npt.NDArray[np.str_],
    programmes: ProgrammeSet,
    base: ScoreWeights,
    *,
    overrides: Mapping[str, float] | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """name -> (P,) weight per patient: ``base`` < the patient's programme < the request's ``overrides``."""
    per = programme_weights(programmes, base)
    names = set(base.weights) | set(AGENDA_COMPONENTS) | {n for w in per.values() for n in w.weights}
    names |= set(overrides or {})
    out = {name: np.full(len(programme_of_row), base[name]) for name in sorted(names)}
    for pid, w in per.items():
        rows = programme_of_row == pid
        for name, column in out.items():
            column[rows] = w[name]
    for name, value in (overrides or {}).items():
        if name not in COMPONENT_NAMES:
            raise InvalidInput(f"weights: field '{name}': unknown score component")
        out[name][:] = value
    return out


def rescore_recorded(
    records: Sequence[Mapping[str, Mapping[str, float]]], overrides: Mapping[str, float]
) -> list[tuple[float, dict[str, float]]]:
    """Serve-time re-ranking of already queued nudges under a request's weight overrides.

    ``records`` are the queued nudges' ``components`` documents (``{name: {"value", "weight"}}``, as
    :meth:`BatchPlan.components_record` writes them). Returns, per nudge, the new deterministic score
    and the weights used; the caller serves the highest. A component the override names but a record
    lacks counts as 0 (it was not computed for that decision).
    """
    out = []
    for comps in records:
        weights = {name: float(overrides.get(name, c["weight"])) for name, c in comps.items()}
        score = sum(float(c["value"]) * weights[name] for name, c in comps.items())
        out.append((score, weights))
    return out


# --------------------------------------------------------------------------------------------- explain
def explain_ranking(
    plan: BatchPlan, row: int, *, top: int = 3, stage: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Why patient ``row`` got their top nudge: the best candidates with every component × weight.

    ``because`` lists the components by how much they put the winner ahead of the runner-up. Scores
    are deterministic (posterior means); an explored or Thompson-drawn pick says so.
    """
    permitted = np.flatnonzero(plan.permitted[row])
    names = sorted(plan.score_parts)
    weights = {n: plan.weight_of(row, n) for n in names}
    contrib = {n: weights[n] * plan.score_parts[n][row, permitted] for n in names}
    total = sum((contrib[n] for n in names), start=np.zeros(len(permitted)))
    order = np.argsort(-total, kind="stable")[:top]
    mine = np.flatnonzero(plan.chosen_row == row)
    chosen = [plan.nudge_ids[int(plan.chosen_nudge[i])] for i in mine[np.argsort(plan.chosen_rank[mine])]]

    def candidate(k: int) -> dict[str, Any]:
        j = int(permitted[k])
        return {
            "nudge": plan.nudge_ids[j], "score": round(float(total[k]), 6),
            "components": {n: {"value": round(float(plan.score_parts[n][row, j]), 6), "weight": weights[n],
                               "contribution": round(float(contrib[n][k]), 6)} for n in names},
        }

    doc: dict[str, Any] = {
        "patient_row": row, "chosen": chosen, "weights": weights, "stage": dict(stage) if stage else None,
        "candidates": [candidate(int(k)) for k in order], "because": [],
        "model_version": plan.model_version,
    }
    top_i = np.flatnonzero((plan.chosen_row == row) & (plan.chosen_rank == 0))
    if len(top_i):
        doc["explored"] = bool(plan.chosen_explored[top_i[0]])
    if len(order) >= 2:
        a, b = int(order[0]), int(order[1])
        gaps = sorted(((float(contrib[n][a] - contrib[n][b]), n) for n in names), reverse=True)
        doc["margin"] = round(float(total[a] - total[b]), 6)
        doc["because"] = [
            f"{n}: {gap:+.3f} (weight {weights[n]:g} × {plan.score_parts[n][row, permitted[a]]:.3f} "
            f"vs {plan.score_parts[n][row, permitted[b]]:.3f} for {plan.nudge_ids[int(permitted[b])]})"
            for gap, n in gaps if abs(gap) > 1e-9
        ]
    return doc


# --------------------------------------------------------------------------------------------- helpers
def _nth_time(rows: npt.NDArray[np.intp], ts: npt.NDArray[np.float64], n: int, n_rows: int) -> npt.NDArray[np.float64]:
    """Per row, the time of its ``n``-th event (1-based); inf when it has fewer."""
    out = np.full(n_rows, np.inf)
    if len(rows) == 0:
        return out
    order = np.lexsort((ts, rows))
    r, t = rows[order], ts[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    hit = rank == n - 1
    out[r[hit]] = t[hit]
    return out


def _latest_nudge(
    rows: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], nudge: npt.NDArray[np.int32], n_rows: int
) -> npt.NDArray[np.intp]:
    """Per row, the nudge of its latest event; -1 when none."""
    out = np.full(n_rows, -1, dtype=np.intp)
    if len(rows) == 0:
        return out
    order = np.lexsort((ts, rows))
    r = rows[order]
    last = np.flatnonzero(np.append(r[1:] != r[:-1], True))  # the last (latest) event of each row
    out[r[last]] = nudge[order][last]
    return out


def _events_of(events: EventColumns, rows: npt.NDArray[np.intp], n_rows: int) -> EventColumns:
    """The events of ``rows``, renumbered 0..len(rows)-1."""
    new = np.full(n_rows, -1, dtype=np.int32)
    new[rows] = np.arange(len(rows), dtype=np.int32)
    mask = new[events.patient_row] >= 0
    sub = events.select(mask)
    return EventColumns(new[sub.patient_row], sub.type_code, sub.category_code, sub.nudge_idx, sub.ts, sub.minutes)


def stage_labels(stages: PatientStages) -> Sequence[str]:
    """'programme/stage' per patient ('' when none), e.g. for summaries."""
    return [
        f"{p}/{stages.programmes[str(p)].stage_ids[int(s)]}" if s >= 0 else ""
        for p, s in zip(stages.programme, stages.stage, strict=True)
    ]
