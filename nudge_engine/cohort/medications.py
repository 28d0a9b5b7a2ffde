"""Medication statements consistent with each patient's conditions (RxNorm ingredient + ATC).

Chronic drugs are ``active`` with a start date and no end; earlier drugs that were switched are
``stopped`` with an end after their start; short courses (metronidazole) end ``completed``. Some
stops fall just inside and just outside the rule wash-outs (disulfiram 14 d, metronidazole 72 h).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nudge_engine.cohort import prevalence as p
from nudge_engine.cohort import vocabulary as v
from nudge_engine.cohort.chart import Chart
from nudge_engine.cohort.population import NONE, Bools, Ints, Population
from nudge_engine.domain.context import Medication


class _Prescriber:
    """Adds medication statements to a chart; starts never precede the patient's first birthday."""

    def __init__(self, chart: Chart, pop: Population) -> None:
        self.chart = chart
        self.latest_start = np.maximum(pop.age_days - 365, 1)

    def __call__(
        self, mask: Bools, drugs: Sequence[v.Concept], pick: Ints, start_days: Ints, *,
        end_days: Ints | None = None, status: str = "active",
    ) -> None:
        """One statement per patient in ``mask``; no ``end_days`` (or NONE) means still running."""
        chart = self.chart
        ends = end_days if end_days is not None else np.full(mask.shape[0], NONE, dtype=np.int64)
        day = chart.day
        started = np.minimum(start_days, self.latest_start)
        for i, k, start, end in chart.rows(mask, pick, started, ends):
            if end == NONE:
                chart.medications[i].append(Medication(drugs[k], status, day(start)))
            else:
                chart.medications[i].append(Medication(drugs[k], status, day(max(start, end)), day(end)))


def build_medications(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    prescribe = _Prescriber(chart, pop)
    size = pop.size
    u = rng.random
    zero = np.zeros(size, dtype=np.int64)
    start = rng.integers(14, 3000, size=size)

    def since(low: int, high: int) -> Ints:
        return rng.integers(low, high, size=size)

    n_htn = len(v.ANTIHYPERTENSIVES)
    first = rng.choice(n_htn, size=size, p=v.ANTIHYPERTENSIVE_WEIGHTS)
    second = (first + rng.integers(1, n_htn, size=size)) % n_htn
    treated = pop.htn & (u(size) < p.ANTIHYPERTENSIVE_IN_HTN)
    prescribe(treated, v.ANTIHYPERTENSIVES, first, start)
    prescribe(treated & (u(size) < p.SECOND_ANTIHYPERTENSIVE), v.ANTIHYPERTENSIVES, second, since(14, 1500))
    switched = treated & (u(size) < 0.1)
    prescribe(switched, v.ANTIHYPERTENSIVES, second, start + since(100, 2000), end_days=start, status="stopped")

    prescribe(pop.metformin, (v.METFORMIN,), zero, start)
    prescribe(pop.sulfonylurea, v.SULFONYLUREAS, rng.integers(0, 3, size=size), since(30, 2000))
    prescribe(pop.insulin, (v.INSULIN_GLARGINE,), zero, since(30, 4000))
    prescribe(pop.t1d | (pop.insulin & (u(size) < 0.4)), (v.INSULIN_LISPRO,), zero, since(30, 4000))
    # Metformin stopped when kidney function fell (CKD 4-5).
    prescribe(pop.t2d & (pop.ckd_stage >= 4), (v.METFORMIN,), zero, start + 400, end_days=since(30, 400),
               status="stopped")

    statin_rate = np.select(
        [pop.chd, pop.diabetic & (pop.age >= 40), pop.htn & (pop.age >= 40), pop.age >= 40],
        [0.8, 0.6, 0.3, 0.06], 0.0,
    )
    statin = rng.choice(len(v.STATINS), size=size, p=v.STATIN_WEIGHTS)
    prescribe(u(size) < statin_rate, v.STATINS, statin, since(30, 3000))

    anticoagulated = pop.af & (u(size) < p.ANTICOAGULANT_IN_AF)
    anticoagulant = np.where(u(size) < p.WARFARIN_SHARE, 0, np.where(u(size) < 0.6, 1, 2))
    prescribe(anticoagulated, (v.WARFARIN, v.APIXABAN, v.RIVAROXABAN), anticoagulant, since(30, 3000))
    prescribe(pop.af & (u(size) < p.AMIODARONE_IN_AF), (v.AMIODARONE,), zero, since(30, 1500))

    prescribe(pop.hf & (u(size) < 0.7), (v.FUROSEMIDE,), zero, since(7, 2000))
    prescribe(pop.hf & (u(size) < 0.5), (v.CARVEDILOL,), zero, since(7, 2000))
    prescribe(pop.hf & (u(size) < 0.3), (v.SPIRONOLACTONE,), zero, since(7, 2000))

    # Disulfiram: some active, some stopped 1-30 days ago (either side of ALC-01's 14 days).
    aud = pop.aud > 0
    prescribe((pop.aud == 1) & (u(size) < p.DISULFIRAM_IN_AUD), (v.DISULFIRAM,), zero, since(7, 700))
    recent_stop = since(1, 31)
    prescribe(aud & (u(size) < p.DISULFIRAM_IN_AUD), (v.DISULFIRAM,), zero, recent_stop + since(20, 300),
               end_days=recent_stop, status="stopped")
    prescribe(aud & (u(size) < 0.15), (v.NALTREXONE,), zero, since(14, 700))

    # Metronidazole: a 7-day course started 0-30 days ago; finished ones are "completed".
    course = u(size) < p.METRONIDAZOLE_COURSE_30D
    began = since(0, 31)
    running = course & (began < 7)
    prescribe(running, (v.METRONIDAZOLE,), zero, began)
    prescribe(course & ~running, (v.METRONIDAZOLE,), zero, began, end_days=began - 7, status="completed")

    prescribe(pop.bipolar & (u(size) < 0.3), (v.LITHIUM,), zero, since(30, 3000))
    prescribe(pop.bipolar & (u(size) < 0.4), (v.QUETIAPINE,), zero, since(30, 3000))
    prescribe(pop.depression & (u(size) < 0.5), (v.SERTRALINE,), zero, since(14, 2000))
    prescribe((pop.age >= 18) & (u(size) < p.BUSPIRONE), (v.BUSPIRONE,), zero, since(14, 2000))
    prescribe(pop.osteoporosis & (u(size) < 0.4), (v.ALENDRONATE,), zero, since(30, 2000))
    prescribe((pop.age >= 18) & (u(size) < p.CYCLOSPORINE), (v.CYCLOSPORINE,), zero, since(100, 3000))
