"""Health-outcome rewards: what a served nudge earned, from the events that followed it.

A decision (patient, nudge, served at ``t``) in programme ``p`` earns the highest
``p.reward.behaviours[b]`` over the behaviours ``b`` the nudge serves that the patient did within
``(t, t + window]``: a completed nudge serving ``b`` (a walk, a medicine taken, a low-salt meal), or an
activity event of at least ``b.activity_min_minutes``. Opens, deliveries and dismissals never earn
anything: engagement is an auxiliary feature (``features.behaviour_matrix``), not the objective.

A patient without a (known) programme falls back to: the served nudge itself completed, unless it is
an onboarding or education nudge (engagement, not a health behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.agenda import behaviour_done
from nudge_engine.personalization.catalog import CATEGORY_CODE, Catalog
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.programmes import ENGAGEMENT_CATEGORIES, ProgrammeSet

DEFAULT_WINDOW_S = 48 * 3600.0


@dataclass(frozen=True, slots=True)
class ServedDecisions:
    """Served decisions to reward; ``row`` uses the same patient numbering as the events."""

    row: npt.NDArray[np.int32]
    nudge: npt.NDArray[np.int32]  # catalog position
    served_s: npt.NDArray[np.float64]
    programme: npt.NDArray[np.str_]  # per decision, '' for none

    def __len__(self) -> int:
        return len(self.row)

    def validate(self) -> None:
        for name in ("nudge", "served_s", "programme"):
            if len(getattr(self, name)) != len(self.row):
                raise InvalidInput(f"ServedDecisions: field '{name}': length differs from 'row'")


@dataclass(frozen=True, slots=True)
class DecisionOutcomes:
    reward: npt.NDArray[np.float64]  # health-outcome reward in [0, 1] (the training objective)
    opened: npt.NDArray[np.bool_]  # the served nudge was opened within the window (auxiliary, reported only)


def outcome_rewards(
    decisions: ServedDecisions, events: EventColumns, programmes: ProgrammeSet, catalog: Catalog
) -> DecisionOutcomes:
    """The health-outcome reward of every decision, and whether it was opened (never part of the reward)."""
    decisions.validate()
    n = len(decisions)
    reward = np.zeros(n)
    d_idx, e_idx = _pairs(decisions.row, events.patient_row)
    dt = events.ts[e_idx].astype(np.float64) - decisions.served_s[d_idx]
    after = dt > 0

    known = np.isin(decisions.programme, np.array(list(programmes) or [""]))
    for pid, programme in programmes.items():
        in_p = decisions.programme[d_idx] == pid
        sel = after & in_p & (dt <= programme.reward_window_s)
        if not sel.any():
            continue
        pd, pe = d_idx[sel], e_idx[sel]
        done = behaviour_done(programme, events)[pe]  # (pairs, B)
        value = programme.serves[:, decisions.nudge[pd]].T * programme.reward_value[None, :]  # (pairs, B)
        earned = np.where(done, value, 0.0).max(axis=1)
        np.maximum.at(reward, pd, earned)

    fallback = after & ~known[d_idx] & (dt <= DEFAULT_WINDOW_S)
    engagement = np.isin(catalog.category_code, [CATEGORY_CODE[c] for c in ENGAGEMENT_CATEGORIES])
    same = (events.type_code[e_idx] == EventType.COMPLETED) & (events.nudge_idx[e_idx] == decisions.nudge[d_idx])
    hit = fallback & same & ~engagement[decisions.nudge[d_idx]]
    reward[d_idx[hit]] = 1.0

    window = np.full(n, DEFAULT_WINDOW_S)
    for pid, programme in programmes.items():
        window[decisions.programme == pid] = programme.reward_window_s
    opened_pair = after & (dt <= window[d_idx]) & (events.type_code[e_idx] == EventType.OPENED)
    opened_pair &= events.nudge_idx[e_idx] == decisions.nudge[d_idx]
    opened = np.zeros(n, dtype=bool)
    opened[d_idx[opened_pair]] = True
    return DecisionOutcomes(reward, opened)


def _pairs(
    decision_rows: npt.NDArray[np.int32], event_rows: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every (decision, event) pair of the same patient, as two index arrays."""
    order = np.argsort(event_rows, kind="stable")
    sorted_rows = event_rows[order]
    lo = np.searchsorted(sorted_rows, decision_rows, side="left")
    hi = np.searchsorted(sorted_rows, decision_rows, side="right")
    counts = hi - lo
    d_idx = np.repeat(np.arange(len(decision_rows)), counts)
    offsets = np.cumsum(counts) - counts
    e_sorted = lo[d_idx] + (np.arange(len(d_idx)) - offsets[d_idx])
    return d_idx.astype(np.intp), order[e_sorted].astype(np.intp)
