"""Hidden response traits, programmes, and 8 weeks of app events in patient-local time.

Each patient is drawn around one of a few hidden personas (when they read, what they complete, how
active they are), with individual noise, so learned clusters and bandits have signal to find:

* a nudge is delivered between 08:00 and 20:00 local time, at a per-patient cadence;
* it is opened with ``open_rate``, less often the further the hour is from ``preferred_hour``;
* an opened nudge is completed with ``complete.<category>``; an unopened one may be dismissed;
* activity is logged on ``active_day_rate`` of days, around ``activity_hour``, for a gamma-distributed
  number of minutes around ``activity_minutes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from types import MappingProxyType

import numpy as np

from nudge_engine.cohort.localtime import local_to_epoch
from nudge_engine.cohort.model import EventType, Programme, SyntheticEvent
from nudge_engine.cohort.population import Floats, Ints, Population
from nudge_engine.domain.nudge import Category

HISTORY_DAYS = 56
HOUR = 3600
NUDGE_CATEGORIES: tuple[Category, ...] = (
    Category.EXERCISE, Category.DIET, Category.SLEEP, Category.STRESS, Category.HYDRATION,
    Category.MEDICATION, Category.WEIGHT, Category.MENTAL_HEALTH, Category.EDUCATION,
)
PROGRAMMES: tuple[Programme, ...] = tuple(Programme)
# Delivery mix per programme over NUDGE_CATEGORIES (rows sum to 1).
PROGRAMME_MIX = np.asarray([
    [0.25, 0.30, 0.05, 0.05, 0.05, 0.10, 0.10, 0.00, 0.10],  # t2d_lifestyle
    [0.25, 0.25, 0.05, 0.10, 0.00, 0.20, 0.05, 0.00, 0.10],  # hypertension
    [0.35, 0.15, 0.05, 0.10, 0.00, 0.20, 0.00, 0.00, 0.15],  # cardiac_rehab
    [0.20, 0.15, 0.15, 0.15, 0.15, 0.00, 0.00, 0.10, 0.10],  # general_wellness
    [0.25, 0.30, 0.05, 0.05, 0.05, 0.00, 0.20, 0.00, 0.10],  # weight_management
])
PERSONAS = ("early_mover", "evening_reader", "diet_focused", "drifting", "athlete")
PERSONA_SHARES = (0.22, 0.22, 0.16, 0.25, 0.15)
# open_rate, dismiss_rate, preferred_hour, active_day_rate, activity_minutes, activity_hour
PERSONA_BASE = np.asarray([
    [0.65, 0.15, 7.5, 0.65, 35.0, 7.0],
    [0.55, 0.20, 20.0, 0.45, 22.0, 18.5],
    [0.50, 0.20, 12.5, 0.40, 20.0, 12.5],
    [0.15, 0.45, 14.0, 0.20, 12.0, 16.0],
    [0.45, 0.25, 17.5, 0.85, 55.0, 17.5],
])
# Completion given opened, over NUDGE_CATEGORIES.
PERSONA_COMPLETION = np.asarray([
    [0.60, 0.35, 0.45, 0.35, 0.50, 0.55, 0.30, 0.30, 0.40],
    [0.30, 0.40, 0.55, 0.55, 0.40, 0.50, 0.30, 0.45, 0.50],
    [0.20, 0.70, 0.30, 0.30, 0.50, 0.45, 0.55, 0.25, 0.40],
    [0.10, 0.12, 0.15, 0.12, 0.20, 0.25, 0.08, 0.10, 0.15],
    [0.80, 0.35, 0.40, 0.20, 0.60, 0.30, 0.35, 0.15, 0.25],
])
TRAIT_KEYS: tuple[str, ...] = (
    "open_rate", "dismiss_rate", "preferred_hour", "active_day_rate", "activity_minutes", "activity_hour",
    "delivery_rate", *(f"complete.{c.value}" for c in NUDGE_CATEGORIES),
)
_KIND = np.asarray(list(EventType), dtype=object)
_CATEGORY = np.asarray([*NUDGE_CATEGORIES, None], dtype=object)
_NUDGE_IDS = np.asarray([f"syn.{c.value}.{k}" for c in NUDGE_CATEGORIES for k in range(1, 5)] + [None],
                        dtype=object)
# tuple.__new__ skips the NamedTuple's Python-level __new__: half the cost per event.
_make_event = partial(tuple.__new__, SyntheticEvent)
_ORDER = {kind: n for n, kind in enumerate(EventType)}


def _logit(x: Floats) -> Floats:
    return np.asarray(np.log(x / (1 - x)), dtype=np.float64)


def _expit(x: Floats) -> Floats:
    return np.asarray(1 / (1 + np.exp(-x)), dtype=np.float64)


class Engagement:
    """Traits, programmes and event histories of one block."""

    def __init__(self, rng: np.random.Generator, pop: Population, as_of: datetime) -> None:
        self.rng = rng
        self.pop = pop
        self.as_of = as_of
        size = pop.size
        u = rng.random
        self.programme = self._programmes(rng, pop)
        self.persona = rng.choice(len(PERSONAS), size=size, p=PERSONA_SHARES)
        base = PERSONA_BASE[self.persona]
        frail = pop.hf | (pop.ckd_stage >= 4) | (pop.age >= 80)
        traits = np.empty((size, len(TRAIT_KEYS)))
        traits[:, 0] = _expit(_logit(base[:, 0]) + rng.normal(0, 0.5, size))
        traits[:, 1] = _expit(_logit(base[:, 1]) + rng.normal(0, 0.4, size))
        traits[:, 2] = np.clip(base[:, 2] + rng.normal(0, 1.2, size), 6.0, 22.5)
        traits[:, 3] = _expit(_logit(base[:, 3]) + rng.normal(0, 0.5, size) - 0.8 * frail)
        traits[:, 4] = base[:, 4] * np.exp(rng.normal(0, 0.3, size)) * np.where(frail, 0.5, 1.0)
        traits[:, 5] = np.clip(base[:, 5] + rng.normal(0, 1.0, size), 6.0, 21.5)
        traits[:, 6] = rng.uniform(0.35, 0.75, size)
        focus = PROGRAMME_MIX[self.programme] >= 0.2
        completion = _logit(PERSONA_COMPLETION[self.persona]) + rng.normal(0, 0.4, (size, 9)) + 0.3 * focus
        traits[:, 7:] = _expit(completion)
        self.traits = traits
        self.enrolled_days = np.where(u(size) < 0.18, rng.integers(1, HISTORY_DAYS, size),
                                      rng.integers(HISTORY_DAYS, 730, size)).astype(np.int64)
        self.enrolled_seconds = rng.integers(8 * HOUR, 20 * HOUR, size)

    @staticmethod
    def _programmes(rng: np.random.Generator, pop: Population) -> Ints:
        u = rng.random
        size = pop.size
        cardiac = (pop.mi_days >= 0) | (pop.revasc > 0) | ((pop.chd | pop.hf) & (u(size) < 0.35))
        t2d = (pop.diabetic | pop.prediabetes) & (u(size) < 0.8)
        htn = pop.htn & (u(size) < 0.7)
        weight = (pop.bmi >= 30) & (u(size) < 0.6) | ((pop.age < 18) & (u(size) < 0.3))
        return np.select([cardiac, t2d, htn, weight], [2, 0, 1, 4], 3).astype(np.int64)

    def trait_maps(self, count: int) -> list[Mapping[str, float]]:
        rows = np.round(self.traits[:count], 4).tolist()
        return [MappingProxyType(dict(zip(TRAIT_KEYS, row, strict=True))) for row in rows]

    def enrolment(self, count: int) -> list[datetime]:
        epoch = local_to_epoch(self.as_of, self.pop.zone, self.enrolled_days, self.enrolled_seconds)
        return [datetime.fromtimestamp(e, UTC) for e in epoch[:count].tolist()]

    def events(self, count: int) -> list[tuple[SyntheticEvent, ...]]:
        rng, pop, traits = self.rng, self.pop, self.traits
        size = pop.size
        window = np.minimum(self.enrolled_days, HISTORY_DAYS)

        # Deliveries: patient index, day, local second, category, variant.
        n_deliv = rng.poisson(traits[:, 6] * window)
        who = np.repeat(np.arange(size), n_deliv)
        day = (rng.random(who.size) * window[who]).astype(np.int64)
        second = rng.integers(8 * HOUR, 20 * HOUR, who.size)
        cdf = np.cumsum(PROGRAMME_MIX[self.programme[who]], axis=1)
        category = np.minimum((rng.random(who.size)[:, None] > cdf).sum(axis=1), len(NUDGE_CATEGORIES) - 1)
        variant = rng.integers(0, 4, who.size)
        hour_gap = second / HOUR - traits[who, 2]
        p_open = traits[who, 0] * np.exp(-(hour_gap**2) / 18.0)
        opened = rng.random(who.size) < p_open
        completed = opened & (rng.random(who.size) < traits[who, 7 + category])
        dismissed = ~opened & (rng.random(who.size) < traits[who, 1])
        open_delay = rng.exponential(40 * 60, who.size).astype(np.int64) + 30
        done_delay = open_delay + rng.exponential(90 * 60, who.size).astype(np.int64) + 60
        dismiss_delay = rng.exponential(15 * 60, who.size).astype(np.int64) + 10
        delivered_at = local_to_epoch(self.as_of, pop.zone[who], day, second)

        # Activity: a (patient x day) grid of active days.
        active = (rng.random((size, HISTORY_DAYS)) < traits[:, 3:4]) & (np.arange(HISTORY_DAYS) < window[:, None])
        a_who, a_day = np.nonzero(active)
        a_second = np.clip(rng.normal(traits[a_who, 5] * HOUR, 1.5 * HOUR), 5.5 * HOUR, 22.5 * HOUR).astype(np.int64)
        minutes = np.maximum(np.round(rng.gamma(2.0, traits[a_who, 4] / 2.0)), 5).astype(np.int64)
        activity_at = local_to_epoch(self.as_of, pop.zone[a_who], a_day.astype(np.int64), a_second)

        parts = [
            (who, delivered_at, EventType.DELIVERED, category, variant, np.ones(who.size, dtype=np.bool_)),
            (who, delivered_at + open_delay, EventType.OPENED, category, variant, opened),
            (who, delivered_at + done_delay, EventType.COMPLETED, category, variant, completed),
            (who, delivered_at + dismiss_delay, EventType.DISMISSED, category, variant, dismissed),
        ]
        owner = [w[m] for w, _, _, _, _, m in parts] + [a_who]
        epoch = [t[m] for _, t, _, _, _, m in parts] + [activity_at]
        kind = [np.full(int(m.sum()), _ORDER[k]) for _, _, k, _, _, m in parts] + [
            np.full(a_who.size, _ORDER[EventType.ACTIVITY])
        ]
        cat = [c[m] for _, _, _, c, _, m in parts] + [np.full(a_who.size, len(NUDGE_CATEGORIES))]
        nid = [(c * 4 + var)[m] for _, _, _, c, var, m in parts] + [np.full(a_who.size, len(_NUDGE_IDS) - 1)]
        mins = [np.full(int(m.sum()), -1) for *_, m in parts] + [minutes]
        columns = tuple(np.concatenate(x) for x in (owner, epoch, kind, cat, nid, mins))
        return _assemble(count, int(self.as_of.timestamp()), columns)


def _assemble(count: int, as_of_epoch: int, columns: tuple[Ints, ...]) -> list[tuple[SyntheticEvent, ...]]:
    """Per-patient event tuples, time-ordered, from flat columns (owner, epoch, kind, category, id, minutes)."""
    owner, epoch, kind, cat, nid, mins = columns
    keep = (owner < count) & (epoch <= as_of_epoch)
    owner, epoch, kind, cat, nid, mins = (x[keep] for x in (owner, epoch, kind, cat, nid, mins))
    order = np.lexsort((kind, epoch, owner))
    owner, epoch, kind, cat, nid, mins = (x[order] for x in (owner, epoch, kind, cat, nid, mins))
    minutes = np.full(mins.size, None, dtype=object)
    has = mins >= 0
    minutes[has] = mins[has].tolist()
    ats = list(map(datetime.fromtimestamp, epoch.tolist(), repeat(UTC)))
    kinds, cats, ids = _KIND[kind].tolist(), _CATEGORY[cat].tolist(), _NUDGE_IDS[nid].tolist()
    rows = zip(kinds, ats, cats, ids, minutes.tolist(), strict=True)
    flat: list[SyntheticEvent] = list(map(_make_event, rows))
    bounds = np.searchsorted(owner, np.arange(count + 1)).tolist()
    return [tuple(flat[bounds[i]:bounds[i + 1]]) for i in range(count)]
