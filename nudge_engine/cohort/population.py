"""One block of patients as numpy arrays: demographics and the latent clinical state.

Everything is drawn vectorised, in a fixed order, from the block's own generator, so a block is the
same whatever else is generated. The builders in :mod:`clinical` and :mod:`observations` turn these
arrays into domain objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nudge_engine.cohort import prevalence as p
from nudge_engine.cohort.localtime import ZONE_SHARES

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

NONE = -1  # "no such event" in day-count arrays


@dataclass(frozen=True, slots=True)
class Population:
    """Latent state of one block; day counts are whole days before ``as_of`` (or NONE)."""

    size: int
    age: Ints
    age_days: Ints
    female: Bools
    zone: npt.NDArray[np.intp]  # index into localtime.ZONE_NAMES
    htn: Bools
    t2d: Bools
    t1d: Bools
    prediabetes: Bools
    ckd_stage: Ints  # 0, 3, 4, 5
    dialysis: Bools
    hf: Bools
    hf_decompensated: Bools
    chd: Bools
    old_mi: Bools
    mi_days: Ints
    revasc: Ints  # 0 none, 1 PCI, 2 CABG
    revasc_days: Ints
    unstable_angina: Bools
    af: Bools
    aortic_stenosis: Bools
    insulin: Bools
    sulfonylurea: Bools
    metformin: Bools
    retinopathy: Ints  # 0 none, 1 mild NPDR, 2 proliferative
    osteoporosis: Bools
    vertebral_fracture: Bools
    bipolar: Bools
    depression: Bools
    aud: Ints  # 0 none, 1 active, 2 remission
    eating_disorder: Ints  # 0 none, 1 active, 2 remission
    pregnancy: Ints  # 0 none, 1 pregnant now, 2 ended in the last 9 months
    gestation_days: Ints  # pregnant now: days since conception; ended: days since the end
    surgery_days: Ints
    suicidal_days: Ints
    hypo_days: Ints
    bmi: Floats

    @property
    def diabetic(self) -> Bools:
        return self.t1d | self.t2d


def _by_age(age: Ints, table: tuple[float, ...]) -> Floats:
    band = np.searchsorted(np.asarray(p.RATE_EDGES), age, side="right") - 1
    return np.asarray(table, dtype=np.float64)[band]


def _days(rng: np.random.Generator, mask: Bools, low: int, high: int) -> Ints:
    """Day counts in [low, high] where mask, NONE elsewhere."""
    days = rng.integers(low, high + 1, size=mask.shape[0])
    return np.where(mask, days, NONE).astype(np.int64)


def _bmi(rng: np.random.Generator, age: Ints, eating_disorder: Ints) -> Floats:
    """Log-normal BMI around 28 for adults (NHANES-like, ~1.5 % under 18.5), lower in active anorexia."""
    adult = age >= 18
    bmi = np.exp(rng.normal(np.where(adult, np.log(28.3), np.log(21.5)), np.where(adult, 0.21, 0.18)))
    bmi = np.where(eating_disorder == 1, np.minimum(bmi, rng.uniform(15.0, 21.0, size=age.shape[0])), bmi)
    return np.round(np.clip(bmi, 13.5, 65.0), 1)


def draw_population(rng: np.random.Generator, size: int) -> Population:  # noqa: PLR0915
    u = rng.random
    bands = p.AGE_BANDS
    band = rng.choice(len(bands), size=size, p=[b[2] for b in bands])
    lows = np.asarray([b[0] for b in bands])
    highs = np.asarray([b[1] for b in bands])
    age = rng.integers(lows[band], highs[band] + 1).astype(np.int64)
    age_days = age * 365 + rng.integers(0, 365, size=size) + age // 4
    female = u(size) < p.FEMALE_SHARE
    zone = rng.choice(len(ZONE_SHARES), size=size, p=ZONE_SHARES)
    adult = age >= 18

    htn = u(size) < _by_age(age, p.HYPERTENSION)
    t1d = u(size) < p.TYPE1_DIABETES
    t2d = (u(size) < _by_age(age, p.TYPE2_DIABETES) * np.where(htn, 1.45, 0.68)) & ~t1d
    prediabetes = (u(size) < _by_age(age, p.PREDIABETES)) & ~t1d & ~t2d
    diabetic = t1d | t2d

    ckd_risk = np.where(diabetic, p.CKD_RISK_DIABETES, np.where(htn, p.CKD_RISK_HYPERTENSION, p.CKD_RISK_NEITHER))
    ckd = u(size) < _by_age(age, p.CKD_3_TO_5) * ckd_risk
    stage_pick = rng.choice(4, size=size, p=p.CKD_STAGE_SPLIT)
    ckd_stage = np.where(ckd, np.asarray([3, 4, 5, 5])[stage_pick], 0).astype(np.int64)
    dialysis = ckd & (stage_pick == 3)

    hf = u(size) < _by_age(age, p.HEART_FAILURE) * np.where(htn, 1.4, 0.6)
    hf_decompensated = hf & (u(size) < p.HF_DECOMPENSATED)
    chd = u(size) < _by_age(age, p.CORONARY_HEART_DISEASE) * np.where(diabetic | htn, 1.3, 0.7)
    old_mi = chd & (u(size) < p.OLD_MI_IN_CHD)
    mi_days = _days(rng, u(size) < _by_age(age, p.RECENT_MI_90D), 0, 90)
    revasc_mask = (chd & (u(size) < p.REVASCULARISATION_90D_IN_CHD)) | ((mi_days >= 0) & (u(size) < 0.5))
    revasc = np.where(revasc_mask, np.where(u(size) < p.CABG_SHARE_OF_REVASC, 2, 1), 0).astype(np.int64)
    revasc_days = _days(rng, revasc_mask, 1, 90)
    revasc_days = np.where(mi_days >= 0, np.minimum(revasc_days, mi_days), revasc_days)
    unstable_angina = u(size) < _by_age(age, p.UNSTABLE_ANGINA)
    af = u(size) < _by_age(age, p.ATRIAL_FIBRILLATION)
    aortic_stenosis = u(size) < _by_age(age, p.AORTIC_STENOSIS)

    insulin = t1d | (t2d & (u(size) < p.INSULIN_IN_T2D))
    sulfonylurea = t2d & (u(size) < p.SULFONYLUREA_IN_T2D)
    metformin = t2d & (u(size) < p.METFORMIN_IN_T2D) & (ckd_stage < 4)
    dr_rate = np.where(insulin, p.RETINOPATHY_ON_INSULIN, p.RETINOPATHY_NO_INSULIN)
    has_dr = diabetic & (u(size) < dr_rate)
    proliferative = u(size) < np.where(insulin, p.PROLIFERATIVE_SHARE[1], p.PROLIFERATIVE_SHARE[0])
    retinopathy = np.where(has_dr, np.where(proliferative, 2, 1), 0).astype(np.int64)

    osteo_rate = np.where(female, p.OSTEOPOROSIS_50_PLUS[1], p.OSTEOPOROSIS_50_PLUS[0]) * (age >= 50)
    osteoporosis = u(size) < osteo_rate
    vertebral_fracture = osteoporosis & (u(size) < p.VERTEBRAL_FRACTURE_IN_OSTEOPOROSIS)

    bipolar = adult & (u(size) < p.BIPOLAR)
    depression = (u(size) < p.DEPRESSION) & ~bipolar
    aud_draw = u(size)
    aud_scale = np.where(adult, 1.0, 0.15)
    aud = np.where(aud_draw < p.AUD_ACTIVE * aud_scale, 1,
                   np.where(aud_draw < (p.AUD_ACTIVE + p.AUD_REMISSION) * aud_scale, 2, 0)).astype(np.int64)
    ed_young = np.asarray(p.EATING_DISORDER["young"])[np.where(female, 0, 1)]
    ed_older = np.asarray(p.EATING_DISORDER["older"])[np.where(female, 0, 1)]
    ed_rate = np.where(age < 40, ed_young, ed_older)
    ed_draw = u(size)
    eating_disorder = np.where(ed_draw < ed_rate, 1, np.where(ed_draw < 2 * ed_rate, 2, 0)).astype(np.int64)

    fertile = female & (age >= 15) & (age <= 50)
    peak = np.where((age >= 20) & (age <= 39), 1.5, 0.45)
    preg_draw = u(size)
    pregnancy = np.where(fertile & (preg_draw < p.PREGNANT_NOW * peak), 1,
                         np.where(fertile & (preg_draw < (p.PREGNANT_NOW + p.PREGNANCY_ENDED) * peak), 2, 0))
    pregnancy = pregnancy.astype(np.int64)
    gestation_days = np.where(pregnancy == 1, rng.integers(28, 280, size=size),
                              np.where(pregnancy == 2, rng.integers(1, 270, size=size), NONE)).astype(np.int64)

    surgery_rate = np.where(age >= 50, p.MAJOR_SURGERY_42D[1], p.MAJOR_SURGERY_42D[0])
    surgery_days = _days(rng, u(size) < surgery_rate * 1.8, 1, 75)  # about half of them within 42 d
    suicidal = u(size) < p.SUICIDAL_IDEATION * np.where(depression | bipolar, 4.0, 0.7)
    suicidal_days = np.where(u(size) < p.SUICIDAL_IDEATION_RECENT_SHARE,
                             rng.integers(0, 31, size=size), rng.integers(31, 400, size=size))
    suicidal_days = np.where(suicidal, suicidal_days, NONE).astype(np.int64)
    hypo_rate = np.where(insulin, p.SEVERE_HYPO_90D[0], np.where(sulfonylurea, p.SEVERE_HYPO_90D[1], 0.0))
    hypo_days = np.where(u(size) < p.SEVERE_HYPO_24H_SHARE, 0, rng.integers(1, 91, size=size))
    hypo_days = np.where(u(size) < hypo_rate, hypo_days, NONE).astype(np.int64)

    return Population(
        size=size, age=age, age_days=age_days, female=female, zone=zone, htn=htn, t2d=t2d, t1d=t1d,
        prediabetes=prediabetes, ckd_stage=ckd_stage, dialysis=dialysis, hf=hf,
        hf_decompensated=hf_decompensated, chd=chd, old_mi=old_mi, mi_days=mi_days, revasc=revasc,
        revasc_days=revasc_days, unstable_angina=unstable_angina, af=af, aortic_stenosis=aortic_stenosis,
        insulin=insulin, sulfonylurea=sulfonylurea, metformin=metformin, retinopathy=retinopathy,
        osteoporosis=osteoporosis, vertebral_fracture=vertebral_fracture, bipolar=bipolar,
        depression=depression, aud=aud, eating_disorder=eating_disorder, pregnancy=pregnancy,
        gestation_days=gestation_days, surgery_days=surgery_days, suicidal_days=suicidal_days,
        hypo_days=hypo_days, bmi=_bmi(rng, age, eating_disorder),
    )
