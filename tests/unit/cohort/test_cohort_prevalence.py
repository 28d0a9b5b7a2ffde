"""Condition prevalences on 20,000 patients land near the (approximate) US figures in prevalence.py."""

from __future__ import annotations

from collections import Counter

import pytest

from nudge_engine.cohort import Programme, SyntheticPatient
from tests.unit.cohort.cohort_queries import AS_OF, drug_codes, has_code, share

Patients = list[SyntheticPatient]


@pytest.mark.parametrize(
    ("label", "prefixes", "low", "high"),
    [
        ("hypertension", ("I10", "38341003"), 0.30, 0.45),
        ("type 2 diabetes", ("E11", "44054006"), 0.09, 0.13),
        ("type 1 diabetes", ("E10",), 0.002, 0.009),
        ("prediabetes", ("R73.03", "15777000"), 0.06, 0.13),
        ("CKD stage 3-5", ("N18.3", "N18.4", "N18.5", "N18.6"), 0.035, 0.08),
        ("heart failure", ("I50", "42343007", "84114007"), 0.015, 0.04),
        ("coronary heart disease", ("I25",), 0.04, 0.09),
        ("bipolar disorder", ("F31",), 0.015, 0.035),
        ("alcohol use disorder", ("F10",), 0.03, 0.07),
        ("atrial fibrillation", ("I48",), 0.015, 0.04),
    ],
)
def test_adult_prevalence_is_near_the_us_figure(
    adults: Patients, label: str, prefixes: tuple[str, ...], low: float, high: float
) -> None:
    assert low <= share(adults, lambda p: has_code(p, *prefixes)) <= high, label


@pytest.mark.parametrize(
    ("label", "prefixes", "at_least"),
    [
        ("dialysis", ("Z99.2",), 10),
        ("decompensated heart failure", ("I50.21", "I50.23", "I50.33"), 10),
        ("MI in the last 90 days", ("I21",), 10),
        ("aortic stenosis", ("I35.0",), 20),
        ("proliferative retinopathy", ("E10.35", "E11.35"), 20),
        ("mild retinopathy", ("E10.32", "E11.32"), 20),
        ("eating disorder", ("F50",), 40),
        ("osteoporotic vertebral fracture", ("M80.08",), 10),
        ("suicidal ideation", ("R45.851",), 20),
        ("severe hypoglycaemia", ("E10.641", "E11.641"), 10),
        ("pregnancy", ("Z34", "72892002", "77386006"), 50),
    ],
)
def test_rare_conditions_the_rules_act_on_are_present(
    cohort: Patients, label: str, prefixes: tuple[str, ...], at_least: int
) -> None:
    assert sum(has_code(p, *prefixes) for p in cohort) >= at_least, label


def test_dialysis_stays_rare(adults: Patients) -> None:
    assert share(adults, lambda p: has_code(p, "Z99.2")) < 0.006


def test_retinopathy_is_more_common_on_insulin(cohort: Patients) -> None:
    diabetic = [p for p in cohort if has_code(p, "E10", "E11")]
    on_insulin = [p for p in diabetic if drug_codes(p) & {"274783", "86009"}]
    no_insulin = [p for p in diabetic if not drug_codes(p) & {"274783", "86009"}]
    retinopathy = ("E10.3", "E11.3")
    assert share(on_insulin, lambda p: has_code(p, *retinopathy)) > 1.5 * share(
        no_insulin, lambda p: has_code(p, *retinopathy))


def test_ckd_is_more_common_with_hypertension(adults: Patients) -> None:
    hypertensive = [p for p in adults if has_code(p, "I10", "38341003")]
    normotensive = [p for p in adults if not has_code(p, "I10", "38341003")]
    assert share(hypertensive, lambda p: has_code(p, "N18")) > 2 * share(normotensive, lambda p: has_code(p, "N18"))


def test_ages_span_minors_to_over_89(cohort: Patients) -> None:
    ages = [p.record.context.age_at(AS_OF) or 0 for p in cohort]
    assert min(ages) >= 12
    assert max(ages) <= 95
    assert 0.01 <= sum(a < 18 for a in ages) / len(ages) <= 0.05
    assert 0.005 <= sum(a > 89 for a in ages) / len(ages) <= 0.03


def test_time_zones_are_spread_over_us_zones_and_a_few_others(cohort: Patients) -> None:
    zones = Counter(p.timezone for p in cohort)
    assert {"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"} <= set(zones)
    assert {"Europe/London", "Australia/Sydney"} <= set(zones)
    assert zones.most_common(1)[0][1] < 0.5 * len(cohort)


def test_every_programme_has_patients(cohort: Patients) -> None:
    assert {p.programme for p in cohort} == set(Programme)


def test_both_sexes_are_present_in_similar_numbers(cohort: Patients) -> None:
    assert 0.45 <= share(cohort, lambda p: p.record.context.sex == "female") <= 0.58
