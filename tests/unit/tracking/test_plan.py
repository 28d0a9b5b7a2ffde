"""The tracking plan file: validated with every problem named; events checked field by field."""

from __future__ import annotations

import pytest

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.tracking.plan import event_json_schema, load_tracking_plan, parse_tracking_plan


def test_the_packaged_plan_loads_and_accepts_the_events_the_app_sends() -> None:
    plan = load_tracking_plan()
    assert plan.check("activity", nudge_id=None, properties={"minutes": 30, "kind": "walk"}) == []
    assert plan.check("completed", nudge_id="ex-walk-10min", properties={}) == []


def test_every_nudge_the_plan_names_is_in_the_packaged_catalog() -> None:
    plan = load_tracking_plan()
    catalog = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml")
    assert set(plan.behaviour_of_nudge) <= set(catalog.ids)


def test_problems_name_the_field_and_a_stable_code_never_the_value() -> None:
    plan = load_tracking_plan()
    problems = plan.check("dismissed", nudge_id=None, properties={"reason": "my neighbour Anne", "x": 1})
    assert [(p.field, p.code) for p in problems] == [
        ("body.nudge_id", "nudge_id_required"),
        ("body.properties.x", "unknown_property"),
        ("body.properties.reason", "unknown_value"),
    ]
    assert all("Anne" not in str(p) for p in problems)


def test_a_boolean_is_not_an_integer() -> None:
    (problem,) = load_tracking_plan().check("completed", nudge_id="n", properties={"minutes": True})
    assert problem.code == "wrong_type"


def test_an_integral_number_is_an_integer_as_the_json_schema_of_the_api_counts_it() -> None:
    plan = load_tracking_plan()
    assert plan.check("activity", nudge_id=None, properties={"minutes": 739.0, "steps": 6386.0}) == []
    (problem,) = plan.check("activity", nudge_id=None, properties={"minutes": 30.5})
    assert (problem.field, problem.code) == ("body.properties.minutes", "wrong_type")


def test_a_plan_declaring_an_event_type_the_engine_cannot_process_is_invalid() -> None:
    with pytest.raises(InvalidRuleSet, match="event type 'shared'"):
        parse_tracking_plan({"version": "1.0.0", "events": {"shared": {}}}, source="plan.yaml")


def test_a_plan_with_a_misplaced_option_names_file_and_field() -> None:
    doc = {"version": "1.0.0", "events": {"activity": {"properties": {"minutes": {"type": "code", "min": 1}}}}}
    with pytest.raises(InvalidRuleSet, match=r"plan.yaml: field 'events.activity.properties.minutes'"):
        parse_tracking_plan(doc, source="plan.yaml")


def test_a_nudge_in_two_behaviours_is_refused() -> None:
    doc = {"version": "1.0.0", "events": {"completed": {"nudge_id": "required"}},
           "behaviours": {"walking": {"nudges": ["n"]}, "running": {"nudges": ["n"]}}}
    with pytest.raises(InvalidRuleSet, match="nudge 'n' belongs to behaviours"):
        parse_tracking_plan(doc, source="plan.yaml")


def test_the_json_schema_has_one_variant_per_event_type() -> None:
    schema = event_json_schema(load_tracking_plan())
    assert [v["properties"]["type"]["enum"] for v in schema["oneOf"]] == [
        ["activity"], ["completed"], ["delivered"], ["dismissed"], ["opened"]]
