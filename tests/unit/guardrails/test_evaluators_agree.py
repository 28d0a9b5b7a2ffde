"""Property tests: the per-request and batch evaluators mean the same; adding a rule never relaxes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nudge_engine.domain.nudge import EXERCISE_TAGS, TAGS, Category, Intensity
from nudge_engine.guardrails.batch import evaluate_batch
from nudge_engine.guardrails.columns import NudgeColumns, PatientColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet, Level, compile_ruleset
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.ruleset import RuleSet
from tests.unit.guardrails.conftest import AS_OF, nudge, patient

SEVERITY = {"deliver": 0, "review": 2, "block": 3}

# Codes the rules care about, plus near misses and unrelated codes.
ICD = ["I21.4", "I25.2", "I25.10", "I50.23", "I50.32", "I10", "I35.0", "E10.9", "E11.65", "E11.3513", "E11.3293",
       "E11.641", "F50.2", "F50.014", "F10.21", "F31.9", "N18.32", "N18.4", "N18.6", "Z99.2", "Z34.82", "O14.13",
       "O44.03", "O30.002", "Z37.0", "O03.9", "M80.08XA", "M81.0", "R45.851", "T14.91XA", "I26.99", "Z47.1",
       "E78.5", "J45.909"]
SNOMED = ["22298006", "84114007", "72892002", "77386006", "44054006", "46635009", "59621000", "66590003",
          "6471006", "64859006", "56882008", "431857002", "46177005", "60573004", "195111005", "19169002",
          "162864005"]
PROCS = [("SNOMED-CT", "232717009"), ("SNOMED-CT", "609588000"), ("SNOMED-CT", "302497006"),
         ("ICD-10-PCS", "021209W"), ("ICD-10-PCS", "02RF3JZ"), ("SNOMED-CT", "11466000")]
MEDS = [("274783", None), ("106892", None), ("25789", "A10BB12"), ("6809", "A10BA02"), ("3554", None),
        ("6922", "P01AB01"), ("6922", "G01AF01"), ("855332", None), ("36567", None), ("83367", None),
        ("17767", None), (None, "J01XD02")]
OBS = [("8480-6", "mm[Hg]", 90, 220), ("8462-4", "mm[Hg]", 50, 130), ("2339-0", "mg/dL", 40, 200),
       ("2339-0", "mmol/L", 2, 12), ("2823-3", "mmol/L", 3, 7), ("2823-3", "mEq/L", 3, 7),
       ("2951-2", "mmol/L", 125, 145), ("33914-3", "mL/min/{1.73_m2}", 5, 110), ("39156-5", "kg/m2", 15, 40),
       ("29463-7", "kg", 60, 66), ("29463-7", "[lb_av]", 130, 140), ("8302-2", "cm", 150, 190),
       ("44260-8", "{score}", 0, 3), ("49051-6", "wk", 10, 38), ("718-7", "g/dL", 6, 14), ("2823-3", "bogus", 3, 7),
       ("8302-2", "[in_i]", 58, 76), ("8302-2", "furlong", 1, 2), ("29463-7", "stone", 9, 12)]
STATUSES = ["active", "active", "active", "resolved", "remission", "inactive", "recurrence"]


@st.composite
def moments(draw: st.DrawFn) -> str:
    offset = draw(st.integers(min_value=-300 * 24, max_value=24))  # hours before as_of (a few after)
    when = AS_OF - timedelta(hours=offset)
    return when.date().isoformat() if draw(st.booleans()) else when.isoformat().replace("+00:00", "Z")


@st.composite
def profiles(draw: st.DrawFn, moments: Any = moments) -> dict[str, Any]:
    conditions = [
        {"system": "ICD-10-CM", "code": c, "status": draw(st.sampled_from(STATUSES)), "onset": draw(moments()),
         "verification": draw(st.sampled_from(["confirmed", "confirmed", "refuted"]))}
        for c in draw(st.lists(st.sampled_from(ICD), max_size=3))
    ] + [
        {"system": "SNOMED-CT", "code": c, "status": draw(st.sampled_from(STATUSES)), "onset": draw(moments())}
        for c in draw(st.lists(st.sampled_from(SNOMED), max_size=2))
    ]
    for c in conditions:
        if draw(st.integers(0, 4)) == 0:
            c["abatement"] = draw(moments())
    meds = [
        {"rxnorm": rx, "atc": atc, "status": draw(st.sampled_from(["active", "stopped", "completed"])),
         "start": "2020-01-01", "end": draw(st.one_of(st.none(), moments()))}
        for rx, atc in draw(st.lists(st.sampled_from(MEDS), max_size=2))
    ]
    observations = [
        {"loinc": loinc, "unit": unit, "value": draw(st.floats(lo, hi, allow_nan=False).map(lambda v: round(v, 1))),
         "effective": draw(moments())}
        for loinc, unit, lo, hi in draw(st.lists(st.sampled_from(OBS), max_size=5))
    ]
    if draw(st.booleans()):
        observations.append({"loinc": "82810-3", "effective": draw(moments()), "value_code": {
            "system": "SNOMED-CT", "code": draw(st.sampled_from(["77386006", "60001007"]))}})
    procedures = [{"system": s, "code": c, "performed": draw(moments())}
                  for s, c in draw(st.lists(st.sampled_from(PROCS), max_size=1))]
    facts = [{"kind": k, "value": v, "effective": draw(moments())}
             for k, v in draw(st.lists(st.sampled_from([
                 ("exercise-clearance", "vigorous"), ("exercise-clearance", "moderate"), ("fluid-restriction", None),
                 ("severe-hypoglycaemia", None), ("nyha-class", "III")]), max_size=1))]
    return {"age": draw(st.one_of(st.none(), st.integers(10, 90))), "conditions": conditions,
            "medications": meds, "observations": observations, "procedures": procedures, "facts": facts}


@st.composite
def nudge_fields(draw: st.DrawFn) -> dict[str, Any]:
    category = draw(st.sampled_from(list(Category)))
    pool = sorted(EXERCISE_TAGS) if category is Category.EXERCISE and draw(st.booleans()) else sorted(TAGS)
    return {"category": category.value, "intensity": draw(st.sampled_from(list(Intensity))).value,
            "duration_min": draw(st.one_of(st.none(), st.integers(5, 90))),
            "tags": draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))}


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(profiles(), min_size=1, max_size=6), st.lists(nudge_fields(), min_size=1, max_size=6))
def test_batch_and_per_request_evaluators_agree_on_every_pair(
    compiled: CompiledRuleSet, profs: list[dict[str, Any]], nudge_list: list[dict[str, Any]]
) -> None:
    contexts = [patient(**p) for p in profs]
    nudges = [nudge(**n) for n in nudge_list]
    result = evaluate_batch(PatientColumns.from_contexts(contexts, AS_OF, compiled),
                            NudgeColumns.from_nudges(nudges, compiled), compiled)
    for i, ctx in enumerate(contexts):
        for j, n in enumerate(nudges):
            d = decide(ctx, n, compiled, AS_OF)
            assert result.fired(i, j) == {f.rule: f.action for f in d.fired}
            assert result.outcome(i, j) is d.decision
            assert result.escalation(i, j) == d.escalation


@pytest.fixture(scope="module")
def without_one_rule(ruleset: RuleSet) -> dict[str, CompiledRuleSet]:
    return {r.id: compile_ruleset(ruleset.with_rules(tuple(x for x in ruleset.rules if x.id != r.id)))
            for r in ruleset.rules}


@FAST
@given(profiles(), nudge_fields(), st.data())
def test_adding_a_rule_never_makes_a_decision_less_severe(
    compiled: CompiledRuleSet, without_one_rule: dict[str, CompiledRuleSet],
    prof: dict[str, Any], fields: dict[str, Any], data: st.DataObject,
) -> None:
    ctx, n = patient(**prof), nudge(**fields)
    rule_id = data.draw(st.sampled_from(sorted(without_one_rule)))
    fewer = decide(ctx, n, without_one_rule[rule_id], AS_OF)
    more = decide(ctx, n, compiled, AS_OF)
    assert SEVERITY[more.decision.value] >= SEVERITY[fewer.decision.value]
    assert fewer.fired_rules <= more.fired_rules
    caution_before = any(f.action == "caution" for f in fewer.fired)
    assert not caution_before or max(Level.OF_ACTION[f.action] for f in more.fired) >= Level.CAUTION
