"""Observations (vitals, labs, screens) and clinician facts for one block.

Distributions are rough NHANES-like shapes (approximations): adult BMI log-normal around 28 with
~1.5 % under 18.5; SBP ~117 mmHg without and ~136 with hypertension, rising with age, and a few
hypertensive patients whose latest reading is >= 180/110; eGFR consistent with the coded CKD stage;
potassium higher with worse kidney function; sodium lower in heart failure. Clinic readings fall in
local office hours; about one adult in ten has no blood pressure in a year and some have nothing
recent at all. Every quantitative observation carries a UCUM unit.
"""

from __future__ import annotations

import numpy as np

from nudge_engine.cohort import prevalence as p
from nudge_engine.cohort import vocabulary as v
from nudge_engine.cohort.chart import Chart, instant
from nudge_engine.cohort.localtime import local_to_epoch
from nudge_engine.cohort.population import NONE, Bools, Floats, Ints, Population
from nudge_engine.domain.codes import FactKind
from nudge_engine.domain.context import ClinicalFact, Moment, Observation, Quantity

HOUR = 3600


def _clinic_times(rng: np.random.Generator, chart: Chart, pop: Population, days: Ints) -> Ints:
    seconds = rng.integers(8 * HOUR, 17 * HOUR + 1800, size=pop.size)
    return local_to_epoch(chart.as_of, pop.zone, np.maximum(days, 0), seconds)


def _observe(chart: Chart, mask: Bools, measure: v.Measure, epoch: Ints, values: Floats) -> None:
    unit = measure.unit
    codings = measure.codings
    for i, at, value in chart.rows(mask, epoch, values):
        chart.observations[i].append(Observation(codings, "final", instant(at), Quantity(value, unit)))


def _recency(rng: np.random.Generator, size: int, shares: tuple[float, ...]) -> Ints:
    """Days since the latest reading for the shares (<=30, 31-90, 91-365, older or none); NONE = none."""
    band = rng.choice(4, size=size, p=shares)
    lows, highs = np.asarray([0, 31, 91, 366]), np.asarray([30, 90, 365, 800])
    days = rng.integers(lows[band], highs[band] + 1)
    return np.where((band == 3) & (rng.random(size) < 0.5), NONE, days).astype(np.int64)


def build_observations(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    _blood_pressure(rng, pop, chart)
    _body_size(rng, pop, chart)
    _labs(rng, pop, chart)
    _screens_and_facts(rng, pop, chart)


def _blood_pressure(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    size = pop.size
    latest = np.where(pop.htn, _recency(rng, size, p.BP_RECENCY_HTN), _recency(rng, size, p.BP_RECENCY))
    readings = np.minimum(1 + rng.poisson(1.0, size=size), 4)
    base = np.where(pop.htn, 136 + 0.2 * (pop.age - 50), 114 + 0.25 * (pop.age - 30))
    crisis = pop.htn & (rng.random(size) < p.BP_CRISIS_IN_HTN)
    statuses = np.where(rng.random(size) < 0.02, 1, 0)
    for n in range(4):
        has = (latest >= 0) & (readings > n)
        days = latest + n * rng.integers(7, 120, size=size) if n else latest
        sbp = base + rng.normal(0, 14 if n else 13, size=size)
        if n == 0:
            sbp = np.where(crisis, rng.uniform(180, 205, size=size), sbp)
        sbp = np.clip(np.round(sbp), 85, 230)
        dbp = np.clip(np.round(0.45 * sbp + 20 + rng.normal(0, 7, size=size)), 45, 135)
        dbp = np.where(crisis & (n == 0), np.round(rng.uniform(100, 124, size=size)), dbp)
        epoch = _clinic_times(rng, chart, pop, days)
        for i, at, s, d, st in chart.rows(has, epoch, sbp, dbp, statuses):
            moment = instant(at)
            status = "amended" if st else "final"
            chart.observations[i].append(Observation(v.SBP.codings, status, moment, Quantity(s, "mm[Hg]")))
            chart.observations[i].append(Observation(v.DBP.codings, status, moment, Quantity(d, "mm[Hg]")))


def _body_size(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    size = pop.size
    adult = pop.age >= 18
    bmi = pop.bmi
    grown = np.where(pop.female, rng.normal(162, 7, size=size), rng.normal(176, 7.5, size=size))
    height: Floats = np.asarray(np.round(np.where(adult, grown, grown - rng.uniform(0, 15, size=size)), 1))
    weight = np.asarray(np.round(bmi * (height / 100) ** 2, 1), dtype=np.float64)
    missing = ~pop.hf & (rng.random(size) < p.BMI_MISSING_365D)
    days = np.where(missing, np.where(rng.random(size) < 0.6, NONE, rng.integers(366, 800, size=size)),
                    rng.integers(0, 366, size=size))
    epoch = _clinic_times(rng, chart, pop, days)
    measured = days >= 0
    _observe(chart, measured, v.BMI, epoch, bmi)
    _observe(chart, measured, v.BODY_WEIGHT, epoch, weight)
    _observe(chart, measured, v.BODY_HEIGHT, epoch, height)

    # Heart failure home weighing: a week of morning weights, some with a >= 1.8 kg gain at the end.
    home = pop.hf & (rng.random(size) < p.HF_HOME_WEIGHING)
    jump = home & (rng.random(size) < p.HF_WEIGHT_JUMP)
    gain = rng.uniform(1.8, 3.2, size=size)
    last_day = rng.integers(0, 2, size=size)
    for day_offset in range(6, -1, -1):
        seconds = rng.integers(6 * HOUR + 1800, 8 * HOUR + 1800, size=size)
        stamp = local_to_epoch(chart.as_of, pop.zone, last_day + day_offset, seconds)
        usual = weight - 0.4 + rng.normal(0, 0.12, size=size)
        daily = np.asarray(np.round(np.where(jump & (day_offset == 0), weight + gain, usual), 1), dtype=np.float64)
        _observe(chart, home, v.BODY_WEIGHT, stamp, daily)


def _labs(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    size = pop.size
    u = rng.random
    stage = pop.ckd_stage
    needs = pop.hf | pop.diabetic | (stage > 0)
    panel = needs | ((pop.age >= 18) & (u(size) < p.LAB_PANEL_365D))
    days = np.where((stage >= 4) | pop.hf_decompensated, rng.integers(0, 31, size=size),
                    rng.integers(0, 366, size=size))
    epoch = _clinic_times(rng, chart, pop, days)

    normal_egfr = np.clip(rng.normal(112 - 0.6 * pop.age, 12, size=size), 60, 130)
    unrecognised = (stage == 0) & (pop.age >= 60) & (u(size) < 0.03)
    egfr = np.select(
        [pop.dialysis, stage == 5, stage == 4, stage == 3, unrecognised],
        [rng.uniform(4, 12, size=size), rng.uniform(7, 14.9, size=size), rng.uniform(15, 29.9, size=size),
         rng.uniform(30, 59.9, size=size), rng.uniform(45, 59.9, size=size)],
        normal_egfr,
    )
    potassium_shift = np.select([pop.dialysis, stage == 5, stage == 4, stage == 3], [0.8, 0.7, 0.45, 0.15], 0.0)
    potassium = np.round(rng.normal(4.2 + potassium_shift, np.where(stage >= 4, 0.5, 0.33), size=size), 1)
    sodium = np.round(np.where(pop.hf, rng.normal(137, 3.5, size=size), rng.normal(139.5, 2.3, size=size)))
    _observe(chart, panel, v.EGFR, epoch, np.floor(egfr))
    _observe(chart, panel, v.POTASSIUM, epoch, np.clip(potassium, 2.8, 7.2))
    _observe(chart, panel, v.SODIUM, epoch, np.clip(sodium, 120, 150))

    a1c_days = rng.integers(0, 181, size=size)
    a1c_epoch = _clinic_times(rng, chart, pop, a1c_days)
    a1c = np.select(
        [pop.t1d, pop.t2d, pop.prediabetes],
        [rng.normal(7.9, 1.1, size=size), rng.normal(7.2, 1.1, size=size) + 0.6 * pop.insulin,
         rng.uniform(5.7, 6.4, size=size)],
        np.minimum(rng.normal(5.3, 0.25, size=size), 5.6),
    )
    tested = (pop.diabetic & (u(size) < 0.9)) | (pop.prediabetes & (u(size) < 0.8)) | (
        (pop.age >= 35) & (u(size) < 0.25))
    _observe(chart, tested, v.HBA1C, a1c_epoch, np.round(np.clip(a1c, 4.5, 14.0), 1))
    lab_glucose = np.where(pop.diabetic, rng.normal(150, 40, size=size), rng.normal(96, 10, size=size))
    _observe(chart, tested, v.GLUCOSE, a1c_epoch, np.round(np.clip(lab_glucose, 55, 450)))

    # Recent finger-stick readings for people on insulin or a sulfonylurea; some low, some < 60 min old.
    monitored = (pop.insulin | pop.sulfonylurea) & (u(size) < 0.7)
    seconds_ago = np.where(u(size) < 0.15, rng.integers(60, 3600, size=size),
                           rng.integers(3600, 36 * 3600, size=size))
    reading = np.where(u(size) < 0.05, rng.uniform(48, 69, size=size), rng.normal(145, 45, size=size))
    _observe(chart, monitored, v.GLUCOSE, chart.as_of_epoch - seconds_ago, np.round(np.clip(reading, 40, 400)))


def _screens_and_facts(rng: np.random.Generator, pop: Population, chart: Chart) -> None:
    size = pop.size
    u = rng.random
    mood = pop.depression | pop.bipolar
    screened = (mood & (u(size) < 0.7)) | ((pop.age >= 12) & (u(size) < 0.08)) | (pop.suicidal_days >= 0)
    recent_ideation = (pop.suicidal_days >= 0) & (pop.suicidal_days <= 30)
    positive = recent_ideation | (u(size) < np.where(mood, 0.10, 0.02))
    item9 = np.where(positive, rng.integers(1, 4, size=size), 0).astype(np.float64)
    days = np.where(recent_ideation, pop.suicidal_days, rng.integers(0, 61, size=size))
    _observe(chart, screened, v.PHQ9_ITEM9, _clinic_times(rng, chart, pop, days), item9)

    # Pregnancy status and gestational age at the latest antenatal visit.
    visit = np.minimum(rng.integers(0, 28, size=size), np.maximum(pop.gestation_days - 14, 0))
    weeks = np.round((pop.gestation_days - visit) / 7.0, 1)
    now = (pop.pregnancy == 1) & (u(size) < 0.7)
    visit_epoch = _clinic_times(rng, chart, pop, visit)
    for i, at in chart.rows(now, visit_epoch):
        chart.observations[i].append(
            Observation(v.PREGNANCY_STATUS, "final", instant(at), value_coding=v.PREGNANT)
        )
    _observe(chart, now, v.GESTATIONAL_AGE, visit_epoch, weeks)
    after = (pop.pregnancy == 2) & (u(size) < 0.3)
    after_days = np.maximum(pop.gestation_days - rng.integers(0, 60, size=size), 0)
    for i, at in chart.rows(after, _clinic_times(rng, chart, pop, after_days)):
        chart.observations[i].append(
            Observation(v.PREGNANCY_STATUS, "final", instant(at), value_coding=v.NOT_PREGNANT)
        )

    # Clinician facts: clearance for vigorous exercise (some older than 12 months), fluid limits.
    at_risk = pop.chd | pop.hf | pop.diabetic | (pop.ckd_stage > 0) | pop.aortic_stenosis
    cleared = at_risk & (u(size) < 0.15)
    intensity = np.where(u(size) < 0.6, 1, 0)
    clearance_days = rng.integers(0, 700, size=size)
    for i, k, d in chart.rows(cleared, intensity, clearance_days):
        chart.facts[i].append(
            ClinicalFact(FactKind.EXERCISE_CLEARANCE.value, chart.day(d), "vigorous" if k else "moderate")
        )
    restricted = (pop.hf & (u(size) < 0.3)) | (pop.dialysis & (u(size) < 0.5))
    litres = rng.choice(np.asarray([1200.0, 1500.0, 1800.0]), size=size)
    for i, d, ml in chart.rows(restricted, rng.integers(0, 400, size=size), litres):
        moment: Moment = chart.day(d)
        chart.facts[i].append(
            ClinicalFact(FactKind.FLUID_RESTRICTION.value, moment, quantity=Quantity(ml, "mL/d"))
        )
