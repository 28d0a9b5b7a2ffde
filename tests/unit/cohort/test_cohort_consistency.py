"""A synthetic record holds together: codes agree with each other, dates with as_of, values with units."""

from __future__ import annotations

from datetime import timedelta

from nudge_engine.cohort import SyntheticPatient
from nudge_engine.domain.codes import CodeSystem
from tests.unit.cohort.cohort_queries import AS_OF, has_code, observations

Patients = list[SyntheticPatient]
PREGNANCY = ("Z34", "72892002", "77386006", "O13", "O30", "O44")


def test_dialysis_patients_have_ckd_stage_5_codes(cohort: Patients) -> None:
    on_dialysis = [p for p in cohort if has_code(p, "Z99.2")]
    assert on_dialysis
    assert all(has_code(p, "N18.6") for p in on_dialysis)


def test_no_medication_ends_before_it_starts(cohort: Patients) -> None:
    for p in cohort:
        for med in p.record.context.medications:
            assert med.start is not None
            if med.end is not None:
                assert med.start.day <= med.end.day
                assert med.status in {"stopped", "completed"}


def test_every_medication_has_an_rxnorm_and_an_atc_coding(cohort: Patients) -> None:
    for p in cohort:
        for med in p.record.context.medications:
            assert {c.system for c in med.codings} == {CodeSystem.RXNORM.value, CodeSystem.ATC.value}


def test_every_observation_has_a_unit_or_a_coded_value(cohort: Patients) -> None:
    for p in cohort:
        for obs in p.record.context.observations:
            if obs.quantity is not None:
                assert obs.quantity.unit
            else:
                assert obs.value_coding is not None


def test_pregnant_patients_are_female_and_15_to_50(cohort: Patients) -> None:
    pregnant = [p for p in cohort if has_code(p, *PREGNANCY)]
    assert pregnant
    for p in pregnant:
        assert p.record.context.sex == "female"
        assert 15 <= (p.record.context.age_at(AS_OF) or 0) <= 50


def test_some_pregnancies_have_ended(cohort: Patients) -> None:
    ended = [
        p for p in cohort
        if has_code(p, "Z39.2") or any(c.abatement for c in p.record.context.conditions if has_code_in(c, PREGNANCY))
    ]
    assert len(ended) >= 20


def has_code_in(condition: object, prefixes: tuple[str, ...]) -> bool:
    return any(c.code.startswith(prefixes) for c in getattr(condition, "codings", ()))


def test_nothing_is_dated_after_as_of(cohort: Patients) -> None:
    for p in cohort:
        ctx = p.record.context
        moments = [c.onset for c in ctx.conditions] + [c.abatement for c in ctx.conditions]
        moments += [m.start for m in ctx.medications] + [m.end for m in ctx.medications]
        moments += [o.effective for o in ctx.observations] + [x.performed for x in ctx.procedures]
        moments += [f.effective for f in ctx.facts]
        assert all(m.day <= AS_OF.date() for m in moments if m is not None)
        assert all(o.effective.at <= AS_OF for o in ctx.observations if o.effective is not None)
        assert all(e.at <= AS_OF for e in p.events)
        assert p.enrolled_at <= AS_OF


def test_egfr_agrees_with_the_coded_ckd_stage(cohort: Patients) -> None:
    checked = 0
    for p in cohort:
        values = [o.quantity.value for o in observations(p, "33914-3") if o.quantity]
        if not values:
            continue
        if has_code(p, "N18.4"):
            assert all(15 <= v < 30 for v in values)
            checked += 1
        elif has_code(p, "N18.6", "N18.5"):
            assert all(v < 15 for v in values)
            checked += 1
        elif has_code(p, "N18.30"):
            assert all(30 <= v < 60 for v in values)
            checked += 1
    assert checked > 100


def test_some_heart_failure_patients_gain_1_8_kg_within_3_days(cohort: Patients) -> None:
    jumps = 0
    for p in cohort:
        weights = sorted((o.effective.at, o.quantity.value) for o in observations(p, "29463-7")
                         if o.effective and o.quantity)
        if len(weights) < 3:
            continue
        latest_at, latest = weights[-1]
        lowest = min(w for at, w in weights[:-1] if latest_at - at <= timedelta(hours=72))
        if AS_OF - latest_at <= timedelta(days=3) and latest - lowest >= 1.8:
            assert has_code(p, "I50", "42343007", "84114007", "I11.0")
            jumps += 1
    assert jumps >= 3


def test_some_latest_blood_pressures_reach_180_over_110(cohort: Patients) -> None:
    crises = 0
    for p in cohort:
        sbp = max(observations(p, "8480-6"), key=lambda o: o.effective.at if o.effective else AS_OF, default=None)
        if sbp and sbp.quantity and sbp.quantity.value >= 180:
            crises += 1
    assert crises >= 20


def test_some_bmis_are_under_18_5_and_some_patients_have_none_in_a_year(adults: Patients) -> None:
    year_ago = AS_OF - timedelta(days=365)
    under = sum(any(o.quantity and o.quantity.value < 18.5 for o in observations(p, "39156-5")) for p in adults)
    missing = sum(
        not any(o.effective and o.effective.at >= year_ago for o in observations(p, "39156-5")) for p in adults
    )
    assert under >= 50
    assert 0.05 <= missing / len(adults) <= 0.2


def test_some_patients_have_no_recent_data_at_all(cohort: Patients) -> None:
    cutoff = AS_OF - timedelta(days=365)
    bare = [p for p in cohort
            if not any(o.effective and o.effective.at >= cutoff for o in p.record.context.observations)]
    assert len(bare) >= 20


def test_clinician_facts_are_recorded_for_a_few(cohort: Patients) -> None:
    kinds = [f.kind for p in cohort for f in p.record.context.facts]
    assert kinds.count("exercise-clearance") >= 50
    assert kinds.count("fluid-restriction") >= 20
