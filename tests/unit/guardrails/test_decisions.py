"""Decisions follow rules-spec §1 and §0: lattice, evidence, time windows, codes, units, fail closed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding
from nudge_engine.guardrails import evaluate
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.decision import Outcome
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.features import ConditionFeature
from nudge_engine.guardrails.units import convert
from tests.unit.guardrails.conftest import AS_OF, nudge, patient

WALK = {"category": "exercise", "intensity": "moderate", "duration_min": 30, "tags": ["aerobic"]}


def _bp(sbp: float, dbp: float, when: str = "2025-05-30T08:00:00Z") -> list[dict[str, object]]:
    return [{"loinc": "8480-6", "value": sbp, "unit": "mm[Hg]", "effective": when},
            {"loinc": "8462-4", "value": dbp, "unit": "mm[Hg]", "effective": when}]


def test_blocks_vigorous_exercise_when_bp_is_180_over_110(compiled: CompiledRuleSet) -> None:
    d = decide(patient(observations=_bp(180, 110)), nudge(**{**WALK, "intensity": "vigorous"}), compiled, AS_OF)
    assert d.decision is Outcome.BLOCK and d.escalation == "urgent_clinical"
    ex03 = next(f for f in d.fired if f.rule == "EX-03")
    assert "http://loinc.org|8480-6=180 mm[Hg]" in ex03.evidence


def test_delivers_a_walk_to_a_healthy_adult_with_no_data(compiled: CompiledRuleSet) -> None:
    d = decide(patient(), nudge(**WALK), compiled, AS_OF)
    assert (d.decision, d.fired, d.caution, d.escalation) == (Outcome.DELIVER, (), (), None)


def test_the_decision_is_the_most_severe_fired_rule_and_all_are_reported(compiled: CompiledRuleSet) -> None:
    ctx = patient(conditions=[{"system": "ICD-10-CM", "code": "E11.3513", "onset": "2023-09-01"}],
                  medications=[{"rxnorm": "274783", "status": "active", "start": "2021-03-01"}])
    d = decide(ctx, nudge(**{**WALK, "tags": ["heavy_lifting"]}), compiled, AS_OF)
    assert d.decision is Outcome.BLOCK
    assert {f.rule: f.action for f in d.fired} == {"EX-08": "block", "EX-09": "caution"}


def test_a_decision_restricted_to_some_rules_evaluates_only_those(compiled: CompiledRuleSet) -> None:
    ctx = patient(conditions=[{"system": "ICD-10-CM", "code": "E11.3513", "onset": "2023-09-01"}],
                  medications=[{"rxnorm": "274783", "status": "active", "start": "2021-03-01"}])
    lifting = nudge(**{**WALK, "tags": ["heavy_lifting"]})
    only_caution = decide(ctx, lifting, compiled, AS_OF, only={"EX-09"})
    assert [f.rule for f in only_caution.fired] == ["EX-09"] and only_caution.decision is Outcome.DELIVER
    assert decide(ctx, lifting, compiled, AS_OF, only=set()).fired == ()


def test_a_caution_rule_delivers_with_its_caution_text(compiled: CompiledRuleSet) -> None:
    ctx = patient(medications=[{"rxnorm": "855332", "status": "active", "start": "2020-01-01"}])
    d = decide(ctx, nudge(category="diet", tags=["vitamin_k_rich"]), compiled, AS_OF)
    assert d.decision is Outcome.DELIVER and d.caution and "greens" in d.caution[0]


def test_the_decision_json_has_exactly_the_contract_keys(compiled: CompiledRuleSet) -> None:
    doc = decide(patient(observations=_bp(185, 90)), nudge(**WALK), compiled, AS_OF).as_json()
    assert list(doc) == ["decision", "caution", "escalation", "fired", "ruleset"]
    assert doc["ruleset"] == {"version": compiled.version, "digest": compiled.digest}
    assert doc["fired"][0] == {"rule": "EX-03", "action": "block", "evidence": ["http://loinc.org|8480-6=185 mm[Hg]"]}


def test_icd10_prefix_e11_35_matches_e11_3513_but_not_e11_3293(compiled: CompiledRuleSet) -> None:
    lifting = nudge(**{**WALK, "tags": ["heavy_lifting"]})
    for code, fires in (("E11.3513", True), ("E11.3293", False), ("E113513", True)):
        ctx = patient(conditions=[{"system": "ICD-10-CM", "code": code, "onset": "2023-09-01"}])
        assert ("EX-08" in decide(ctx, lifting, compiled, AS_OF).fired_rules) is fires, code


@pytest.mark.parametrize(("unit", "value", "fires"), [("mg/dL", 69, True), ("mmol/L", 3.8, True),
                                                      ("mmol/L", 3.9, False), ("mg/dL", 70, False)])
def test_glucose_thresholds_convert_units(compiled: CompiledRuleSet, unit: str, value: float, fires: bool) -> None:
    ctx = patient(observations=[{"loinc": "2339-0", "value": value, "unit": unit, "effective": "2025-06-01T07:30:00Z"}])
    d = decide(ctx, nudge(**WALK), compiled, AS_OF)
    assert (d.decision is Outcome.BLOCK) is fires


def test_an_unconvertible_unit_fails_closed_to_review(compiled: CompiledRuleSet) -> None:
    ctx = patient(observations=[{"loinc": "2823-3", "value": 5.9, "unit": "furlongs", "effective": "2025-05-30"}])
    d = decide(ctx, nudge(category="diet", tags=["potassium_rich"]), compiled, AS_OF)
    assert d.decision is Outcome.REVIEW
    assert [f.rule for f in d.fired] == ["DT-01"] and d.fired[0].failed


def test_potassium_in_meq_per_litre_equals_mmol_per_litre() -> None:
    from nudge_engine.guardrails.schema import Analyte

    assert convert(5.5, "mEq/L", "mmol/L", Analyte(charge=1)) == pytest.approx(5.5)
    assert convert(180, "[lb_av]", "kg") == pytest.approx(81.6466, rel=1e-4)
    assert convert(5.5, "mEq/L", "mmol/L") is None


def test_date_only_values_stand_for_the_end_of_their_day_in_hour_windows(compiled: CompiledRuleSet) -> None:
    beer = nudge(category="alcohol", tags=["alcohol_permissive"])
    for end, fires in (("2025-05-29", True), ("2025-05-28", False), ("2025-05-29T07:59:00Z", False)):
        ctx = patient(medications=[{"rxnorm": "6922", "status": "completed", "start": "2025-05-20", "end": end}])
        assert ("ALC-02" in decide(ctx, beer, compiled, AS_OF).fired_rules) is fires, end


def test_day_windows_count_calendar_dates_not_hours(compiled: CompiledRuleSet) -> None:
    late_evening = patient(conditions=[{"system": "ICD-10-CM", "code": "I21.4", "onset": "2025-05-11T23:30:00Z"}])
    assert "EX-01" in decide(late_evening, nudge(**WALK), compiled, AS_OF).fired_rules


def test_facts_dated_after_as_of_are_ignored(compiled: CompiledRuleSet) -> None:
    ctx = patient(observations=_bp(200, 130, "2025-06-01T09:00:00Z"))
    assert decide(ctx, nudge(**WALK), compiled, AS_OF).decision is Outcome.DELIVER


def test_history_counts_only_where_the_spec_says_so(compiled: CompiledRuleSet) -> None:
    resolved_ed = {"system": "ICD-10-CM", "code": "F50.2", "status": "resolved", "onset": "2015-01-01"}
    d = decide(patient(conditions=[resolved_ed]), nudge(category="weight", tags=["weight_loss_goal"]), compiled, AS_OF)
    assert {f.rule: f.action for f in d.fired}.get("WT-01") == "review"
    resolved_bipolar = {"system": "ICD-10-CM", "code": "F31.9", "status": "resolved", "onset": "2015-01-01"}
    d = decide(patient(conditions=[resolved_bipolar]), nudge(category="sleep", tags=["sleep_restriction"]),
               compiled, AS_OF)
    assert "SL-01" not in d.fired_rules


def test_an_abatement_on_or_before_as_of_ends_an_active_condition(compiled: CompiledRuleSet) -> None:
    sleep = nudge(category="sleep", tags=["sleep_restriction"])
    for abatement, fires in (("2025-06-01", False), ("2025-06-02", True)):
        bipolar = {"system": "ICD-10-CM", "code": "F31.9", "onset": "2015-01-01", "abatement": abatement}
        ctx = patient(conditions=[bipolar])
        assert ("SL-01" in decide(ctx, sleep, compiled, AS_OF).fired_rules) is fires


def test_a_refuted_or_entered_in_error_condition_never_counts(compiled: CompiledRuleSet) -> None:
    for status in ("refuted", "entered-in-error"):
        aud = {"system": "ICD-10-CM", "code": "F10.20", "verification": status, "onset": "2020-01-01"}
        beer = nudge(category="alcohol", tags=["alcohol_permissive"])
        assert "ALC-03" not in decide(patient(conditions=[aud]), beer, compiled, AS_OF).fired_rules


def test_an_unknown_age_fails_closed_to_review_for_age_rules(compiled: CompiledRuleSet) -> None:
    d = decide(patient(age=None), nudge(category="alcohol", tags=["alcohol_permissive"]), compiled, AS_OF)
    assert d.decision is Outcome.REVIEW and "ALC-03" in d.fired_rules


def test_an_exception_while_reading_a_feature_makes_the_rule_review_and_is_counted(
    compiled: CompiledRuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ConditionFeature, ctx: object, at: datetime) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(ConditionFeature, "read", broken)
    before = evaluate.FAILURES[("SL-01", "error")]
    d = decide(patient(), nudge(category="sleep", tags=["sleep_restriction"]), compiled, AS_OF)
    fired = {f.rule: f for f in d.fired}
    assert d.decision is Outcome.REVIEW and fired["SL-01"].failed and fired["SL-01"].action == "review"
    assert fired["SL-01"].evidence == ("evaluation error: RuntimeError",)
    assert "MH-01" in fired  # every rule that reads conditions fails closed
    assert evaluate.FAILURES[("SL-01", "error")] == before + 1


def test_an_exception_inside_a_rule_never_delivers(compiled: CompiledRuleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = next(r for r in compiled.rules if r.id == "MED-01")

    class Exploding:
        def matches(self, _nudge: object) -> bool:
            return True

        def __getattr__(self, name: str) -> object:
            raise RuntimeError(name)

    broken_branch = replace(rule.branches[0], target=Exploding(), when=Exploding())  # type: ignore[arg-type]
    broken = replace(compiled, rules=(replace(rule, branches=(broken_branch,)),))
    d = decide(patient(), nudge(category="medication", tags=["adherence"]), broken, AS_OF)
    assert d.decision is Outcome.REVIEW and d.fired[0].rule == "MED-01"


def test_pregnancy_expires_42_weeks_after_onset_unless_newer_evidence(compiled: CompiledRuleSet) -> None:
    diet = nudge(category="weight", tags=["weight_loss_goal"])
    old = {"system": "SNOMED-CT", "code": "77386006", "onset": "2024-08-10"}
    assert "WT-03" not in decide(patient(conditions=[old]), diet, compiled, AS_OF).fired_rules
    test_positive = {"loinc": "82810-3", "value_code": {"system": "SNOMED-CT", "code": "77386006"},
                     "effective": "2025-05-01"}
    assert "WT-03" in decide(patient(conditions=[old], observations=[test_positive]), diet, compiled, AS_OF).fired_rules


def test_pregnancy_ends_with_later_end_evidence_but_not_earlier(compiled: CompiledRuleSet) -> None:
    diet = nudge(category="weight", tags=["weight_loss_goal"])
    preg = {"system": "ICD-10-CM", "code": "Z34.02", "onset": "2025-03-01"}
    for end_onset, pregnant in (("2025-04-01", False), ("2025-02-01", True)):
        ended = {"system": "ICD-10-CM", "code": "O03.9", "onset": end_onset}
        assert ("WT-03" in decide(patient(conditions=[preg, ended]), diet, compiled, AS_OF).fired_rules) is pregnant


def test_a_remission_code_is_review_even_when_coded_active(compiled: CompiledRuleSet) -> None:
    ctx = patient(conditions=[{"system": "ICD-10-CM", "code": "F50.25", "onset": "2020-01-01"}])
    d = decide(ctx, nudge(category="diet", tags=["calorie_counting"]), compiled, AS_OF)
    assert {f.rule: f.action for f in d.fired}["WT-01"] == "review"


def test_products_match_through_the_local_product_map(compiled: CompiledRuleSet) -> None:
    grapefruit = nudge(category="diet", tags=["grapefruit"])
    for code, action in (("312961", "block"), ("617311", "caution"), ("308136", None)):
        ctx = patient(medications=[{"rxnorm": code, "status": "active", "start": "2020-01-01"}])
        fired = {f.rule: f.action for f in decide(ctx, grapefruit, compiled, AS_OF).fired}
        assert fired.get("DT-05") == action, code


def test_the_legal_drinking_age_is_a_parameter(ruleset: object) -> None:
    from nudge_engine.guardrails.compiler import compile_ruleset
    from nudge_engine.guardrails.loader import load_ruleset
    from tests.unit.guardrails.conftest import RULES

    uk = compile_ruleset(load_ruleset(RULES, parameters={"legal_drinking_age": 18}))
    beer = nudge(category="alcohol", tags=["alcohol_permissive"])
    assert "ALC-03" not in decide(patient(age=19), beer, uk, AS_OF).fired_rules
    assert decide(patient(age=19), beer, uk, AS_OF).ruleset_digest == uk.digest


def test_decisions_do_not_depend_on_the_time_zone_of_as_of(compiled: CompiledRuleSet) -> None:
    from datetime import timedelta, timezone

    ctx = patient(medications=[{"rxnorm": "6922", "status": "completed", "start": "2025-05-20", "end": "2025-05-29"}])
    beer = nudge(category="alcohol", tags=["alcohol_permissive"])
    elsewhere = AS_OF.astimezone(timezone(timedelta(hours=-7)))
    assert decide(ctx, beer, compiled, elsewhere).fired_rules == decide(ctx, beer, compiled, AS_OF).fired_rules


def test_codings_keep_their_system(compiled: CompiledRuleSet) -> None:
    assert Coding(CodeSystem.SNOMED.value, "1").system == "http://snomed.info/sct"
    assert AS_OF.tzinfo is UTC
