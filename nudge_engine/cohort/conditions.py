"""Coded conditions and procedures for one block, from its latent :class:`Population`.

Onsets are date-only (as Synthea's CSV export gives them) and never after ``as_of``. Chronic
diagnoses get an onset some years back, bounded by the patient's age; the time-critical ones
(recent MI, revascularisation, surgery, severe hypoglycaemia, suicidal ideation, pregnancy) use the
day counts drawn in the population so the guardrail windows have cases on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nudge_engine.cohort import prevalence as p
from nudge_engine.cohort import vocabulary as v
from nudge_engine.cohort.chart import Chart
from nudge_engine.cohort.population import Ints, Population
from nudge_engine.domain.context import Condition, Procedure


def _onsets(rng: np.random.Generator, pop: Population, mean_years: float, min_age_years: int = 10) -> Ints:
    """Days since diagnosis: exponential around ``mean_years``, not before ``min_age_years`` of age."""
    drawn = rng.exponential(mean_years * 365.0, size=pop.size).astype(np.int64) + 30
    latest = np.maximum(pop.age_days - min_age_years * 365, 1)
    return np.minimum(drawn, latest)


def _add(
    chart: Chart,
    mask: np.ndarray,
    onset_days: Ints,
    concepts: Sequence[v.Concept],
    *,
    pick: Ints | None = None,
    status: str = "active",
    abatement_days: Ints | None = None,
) -> None:
    choice = pick if pick is not None else np.zeros(mask.shape[0], dtype=np.int64)
    ended = abatement_days if abatement_days is not None else np.full(mask.shape[0], -1, dtype=np.int64)
    day = chart.day
    for i, onset, k, end in chart.rows(mask, onset_days, choice, ended):
        start = day(onset)
        chart.conditions[i].append(
            Condition(concepts[k], status, "confirmed", start, day(end) if end >= 0 else None, start)
        )


def build_conditions(rng: np.random.Generator, pop: Population, chart: Chart) -> None:  # noqa: PLR0915
    size = pop.size
    u = rng.random
    pick2 = rng.integers(0, 2, size=size)
    pick3 = rng.integers(0, 3, size=size)
    pick4 = rng.integers(0, 4, size=size)

    # Hypertension, with about one in five coded in SNOMED only, as Synthea does.
    _add(chart, pop.htn, _onsets(rng, pop, 8.0, 18), (v.HYPERTENSION, v.HYPERTENSION_SCT),
         pick=(u(size) < 0.2).astype(np.int64))
    t2d_onset = _onsets(rng, pop, 7.0, 18)
    t2d_code = np.where(u(size) < 0.15, 2, np.where(u(size) < 0.3, 1, 0)).astype(np.int64)
    _add(chart, pop.t2d, t2d_onset, (v.T2D, v.T2D_HYPERGLYCAEMIA, v.T2D_SCT), pick=t2d_code)
    t1d_onset = _onsets(rng, pop, 15.0, 3)
    _add(chart, pop.t1d, t1d_onset, (v.T1D,))
    _add(chart, pop.prediabetes, _onsets(rng, pop, 3.0, 18), (v.PREDIABETES, v.PREDIABETES_SCT), pick=pick2)

    diab_onset = np.where(pop.t1d, t1d_onset, t2d_onset)
    dr_onset = np.maximum(diab_onset // 2, 1)
    dr_type = np.where(pop.t1d, 1, 2)
    _add(chart, pop.retinopathy == 1, dr_onset, (v.RETINOPATHY_MILD[1], v.RETINOPATHY_MILD[2]), pick=dr_type - 1)
    _add(chart, pop.retinopathy == 2, dr_onset,
         (v.RETINOPATHY_PROLIFERATIVE[1], v.RETINOPATHY_PROLIFERATIVE[2]), pick=dr_type - 1)
    _add(chart, pop.hypo_days >= 0, pop.hypo_days, (v.SEVERE_HYPO[1], v.SEVERE_HYPO[2]), pick=dr_type - 1,
         status="resolved", abatement_days=pop.hypo_days)

    ckd_onset = _onsets(rng, pop, 4.0, 18)
    for stage in (3, 4, 5):
        staged = (pop.ckd_stage == stage) & ~pop.dialysis
        _add(chart, staged, ckd_onset, (v.CKD_STAGE[stage],))
    _add(chart, pop.dialysis, ckd_onset, (v.ESRD,))
    _add(chart, pop.dialysis, np.minimum(ckd_onset, rng.integers(30, 2000, size=size)), (v.DIALYSIS_STATUS,))
    _add(chart, pop.t2d & (pop.ckd_stage > 0) & (u(size) < 0.4), ckd_onset, (v.T2D_CKD,))

    hf_onset = _onsets(rng, pop, 4.0, 30)
    chronic_hf = pop.hf & ~pop.hf_decompensated
    _add(chart, chronic_hf, hf_onset, v.HF_CHRONIC, pick=pick4)
    _add(chart, chronic_hf & pop.htn & (u(size) < 0.3), hf_onset, (v.HYPERTENSIVE_HEART_DISEASE_HF,))
    _add(chart, pop.hf_decompensated, rng.integers(0, 20, size=size), v.HF_DECOMPENSATED, pick=pick3)

    chd_onset = _onsets(rng, pop, 6.0, 30)
    _add(chart, pop.chd, chd_onset, (v.CHD,))
    _add(chart, pop.old_mi, np.maximum(chd_onset, 120), (v.OLD_MI,))
    _add(chart, pop.mi_days >= 0, pop.mi_days, (v.ACUTE_MI,))
    _add(chart, pop.unstable_angina, rng.integers(0, 14, size=size), (v.UNSTABLE_ANGINA,))
    _add(chart, pop.af, _onsets(rng, pop, 5.0, 30), ((v.icd("I48.91", "Unspecified atrial fibrillation"),),))
    _add(chart, pop.aortic_stenosis, _onsets(rng, pop, 3.0, 40), (v.AORTIC_STENOSIS,))

    _add(chart, pop.osteoporosis, _onsets(rng, pop, 4.0, 50), (v.OSTEOPOROSIS,))
    _add(chart, pop.vertebral_fracture, rng.integers(5, 700, size=size), (v.VERTEBRAL_FRACTURE,))
    _add(chart, pop.bipolar, _onsets(rng, pop, 8.0, 16), (v.BIPOLAR,))
    _add(chart, pop.depression, _onsets(rng, pop, 5.0, 12), (v.DEPRESSION,))
    aud_onset = _onsets(rng, pop, 6.0, 15)
    _add(chart, pop.aud == 1, aud_onset, (v.AUD_ACTIVE,))
    # Remission: either the original code with clinicalStatus remission, or the "in remission" code.
    coded_remission = u(size) < 0.5
    _add(chart, (pop.aud == 2) & ~coded_remission, aud_onset, (v.AUD_ACTIVE,), status="remission")
    _add(chart, (pop.aud == 2) & coded_remission, aud_onset, (v.AUD_REMISSION,))
    ed_onset = _onsets(rng, pop, 4.0, 12)
    _add(chart, pop.eating_disorder == 1, ed_onset, v.EATING_DISORDER_ACTIVE, pick=pick3)
    _add(chart, (pop.eating_disorder == 2) & ~coded_remission, ed_onset, v.EATING_DISORDER_ACTIVE, pick=pick3,
         status="remission")
    _add(chart, (pop.eating_disorder == 2) & coded_remission, ed_onset, v.EATING_DISORDER_REMISSION_CODED, pick=pick3)
    _add(chart, pop.suicidal_days >= 0, pop.suicidal_days, (v.SUICIDAL_IDEATION,))
    attempt = (pop.suicidal_days >= 0) & (u(size) < 0.05)
    _add(chart, attempt, pop.suicidal_days, ((v.icd("T14.91XA", "Suicide attempt, initial encounter"),),),
         status="resolved", abatement_days=pop.suicidal_days)

    _build_pregnancy(rng, pop, chart, pick4)
    _build_procedures(rng, pop, chart)


def _build_pregnancy(rng: np.random.Generator, pop: Population, chart: Chart, pick4: Ints) -> None:
    size = pop.size
    now = pop.pregnancy == 1
    ended = pop.pregnancy == 2
    # Ended pregnancies: conception 40 weeks before the end, which is ``gestation_days`` ago.
    onset = np.where(now, pop.gestation_days, pop.gestation_days + 273)
    _add(chart, now, onset, v.PREGNANCY, pick=pick4)
    # About half the ended ones carry an abatement date, the rest a postpartum code.
    abated = ended & (rng.random(size) < 0.5)
    _add(chart, abated, onset, v.PREGNANCY, pick=pick4, status="resolved", abatement_days=pop.gestation_days)
    _add(chart, ended & ~abated, onset, v.PREGNANCY, pick=pick4)
    _add(chart, ended & ~abated, pop.gestation_days, (v.DELIVERY,))
    late = now & (pop.gestation_days > 182) & (rng.random(size) < p.THIRD_TRIMESTER_COMPLICATED)
    _add(chart, late, np.maximum(pop.gestation_days - 182, 0) // 2, v.PREGNANCY_COMPLICATIONS,
         pick=rng.integers(0, 3, size=size))


def _build_procedures(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    size = pop.size
    day = chart.day
    surgery = rng.integers(0, 2, size=size)
    hd_days = rng.integers(0, 3, size=size)
    for i, kind, days in chart.rows(pop.revasc > 0, pop.revasc, pop.revasc_days):
        chart.procedures[i].append(Procedure(v.CABG if kind == 2 else v.PCI, "completed", day(days)))
    for i, kind, days in chart.rows(pop.surgery_days >= 0, surgery, pop.surgery_days):
        chart.procedures[i].append(
            Procedure(v.KNEE_REPLACEMENT if kind == 0 else v.HIP_REPLACEMENT, "completed", day(days))
        )
        chart.conditions[i].append(Condition(v.JOINT_AFTERCARE, "active", "confirmed", day(days), None, day(days)))
    for i, days in chart.rows(pop.dialysis, hd_days):
        for session in (days, days + 2, days + 4):
            chart.procedures[i].append(Procedure(v.HAEMODIALYSIS, "completed", day(session)))
