"""How simulated patients respond to a delivered nudge: the hidden model of the personalization simulator.

As in :mod:`nudge_engine.personalization.simulator` (same parameters, :class:`WorldSettings`)::

    p(complete | patient i, nudge n) = sigmoid(base[n] + taste[type(i), category(n)]
                                               + affinity[type(i), n] + 0.5 · engagement[i])

plus what an experiment plants: an added probability for an arm, optionally different in one
segment (a harm). The patient's hidden type and engagement are drawn from the seed over the cohort
sorted by surrogate id, so a run is reproducible. Opening is at least as likely as completing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.catalog import CATEGORIES, Catalog
from nudge_engine.personalization.simulator import WorldSettings


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass(frozen=True, slots=True)
class ResponseModel:
    patient_row: dict[str, int]
    logit: npt.NDArray[np.float64]  # (patients, nudges) hidden completion log-odds
    open_logit: npt.NDArray[np.float64]  # (patients,)
    active_day_rate: npt.NDArray[np.float64]  # (patients,)
    minutes_mean: npt.NDArray[np.float64]  # (patients,)

    @classmethod
    def draw(
        cls, patient_ids: Sequence[str], catalog: Catalog, *, seed: int, settings: WorldSettings | None = None
    ) -> ResponseModel:
        s = settings or WorldSettings()
        ids = sorted(patient_ids)
        rng = np.random.default_rng([seed, len(ids)])
        n, k, t = len(ids), len(catalog), s.n_types
        ptype = rng.integers(0, t, n)
        engagement = rng.normal(0.0, 0.4, t)[ptype] + rng.normal(0.0, s.engagement_sd, n)
        cat = catalog.category_code.astype(np.int64)
        base = rng.normal(s.base_mean, s.base_sd, k)
        taste = rng.normal(0.0, s.taste_sd, (t, len(CATEGORIES)))
        affinity = rng.normal(0.0, s.affinity_sd, (t, k))
        logit = base[None, :] + taste[ptype][:, cat] + affinity[ptype] + 0.5 * engagement[:, None]
        return cls(
            {pid: i for i, pid in enumerate(ids)}, logit, 0.4 + engagement,
            np.clip(0.45 + 0.25 * engagement, 0.05, 0.95), rng.uniform(12.0, 45.0, t)[ptype],
        )

    def completion_probability(self, patient_id: str, nudge: int) -> float:
        return float(_sigmoid(np.asarray(self.logit[self.patient_row[patient_id], nudge])))

    def open_probability(self, patient_id: str) -> float:
        return float(_sigmoid(np.asarray(self.open_logit[self.patient_row[patient_id]])))

    def activity_rate(self, patient_id: str) -> tuple[float, float]:
        i = self.patient_row[patient_id]
        return float(self.active_day_rate[i]), float(self.minutes_mean[i])
