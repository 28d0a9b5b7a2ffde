"""The nudge catalog validates strictly, names every problem, and the sample covers what the rules need."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.domain.nudge import Category
from nudge_engine.entrypoints.cli import app
from nudge_engine.personalization.catalog import load_catalog, parse_catalog
from nudge_engine.personalization.segment_spec import load_segment_spec

DATA = Path(__file__).resolve().parents[3] / "nudge_engine" / "data"
CATALOG = DATA / "catalog.yaml"
SEGMENTS = DATA / "segments.yaml"


def _doc(*nudges: dict[str, object]) -> dict[str, object]:
    return {"version": "t1", "nudges": list(nudges)}


WALK = {"id": "walk", "category": "exercise", "intensity": "light", "title": "Walk", "body": "Walk ten minutes."}


def test_the_sample_catalog_is_valid_against_the_sample_segments() -> None:
    spec = load_segment_spec(SEGMENTS)
    catalog = load_catalog(CATALOG, segment_ids={s.id for s in spec.segments})
    assert len(catalog) >= 60
    assert {e.category for e in catalog.entries} == set(Category)


@pytest.mark.parametrize(
    "tags",
    [
        {"heavy_lifting"}, {"intermittent_fasting"}, {"extended_fast"}, {"sauna"}, {"sauna", "alcohol_permissive"},
        {"grapefruit"}, {"alcohol_containing"}, {"fluid_increase"}, {"weight_loss_goal"}, {"calorie_counting"},
        {"potassium_rich"}, {"salt_substitute"}, {"high_protein"}, {"vitamin_k_rich"}, {"sleep_restriction"},
        {"hot_yoga"}, {"scuba"}, {"adherence"},
    ],
)
def test_the_sample_catalog_holds_nudges_the_guardrails_must_see(tags: set[str]) -> None:
    catalog = load_catalog(CATALOG)
    assert any(tags <= set(e.tags) for e in catalog.entries)


def test_the_sample_catalog_never_asks_to_skip_stop_or_change_a_medicine() -> None:
    catalog = load_catalog(CATALOG)
    forbidden = {"skip_dose", "stop_medication", "dose_change", "replace_with_supplement"}
    assert not [e.id for e in catalog.entries if forbidden & set(e.tags)]


def test_the_sample_catalog_has_vigorous_intervals_and_plain_safe_nudges() -> None:
    catalog = load_catalog(CATALOG)
    assert catalog.entries[catalog.index["ex-hiit-intervals"]].intensity == "vigorous"
    for safe in ("ex-walk-10min", "sleep-consistent-schedule", "stress-box-breathing", "edu-bp-numbers", "onb-welcome"):
        assert not {"heavy_lifting", "sauna", "fluid_increase"} & set(catalog.entries[catalog.index[safe]].tags)


def test_every_problem_is_reported_with_file_nudge_and_field() -> None:
    bad = [
        {**WALK, "id": "n-a", "category": "yoga"},
        {**WALK, "id": "n-b", "tags": ["aerobic", "moonwalk"]},
        {**WALK, "id": "n-c", "intensity": "extreme"},
        {**WALK, "id": "n-d", "colour": "blue"},
    ]
    with pytest.raises(InvalidRuleSet) as err:
        parse_catalog(_doc(*bad), source="cat.yaml")
    problems = err.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("cat.yaml: nudge 'n-a': field 'category':")
    assert problems[1].startswith("cat.yaml: nudge 'n-b': field 'tags':") and "moonwalk" in problems[1]
    assert problems[2].startswith("cat.yaml: nudge 'n-c': field 'intensity':")
    assert problems[3].startswith("cat.yaml: nudge 'n-d': field 'colour':")


def test_duplicate_ids_unknown_follow_ups_and_unknown_segments_are_errors() -> None:
    doc = _doc(WALK, {**WALK, "follow_ups": ["nowhere"], "target_segments": ["martians"]})
    with pytest.raises(InvalidRuleSet) as err:
        parse_catalog(doc, source="cat.yaml", segment_ids={"t2d"})
    text = "\n".join(err.value.problems)
    assert "nudge 'walk': field 'id': duplicate id" in text
    assert "field 'follow_ups': unknown nudge 'nowhere'" in text
    assert "field 'target_segments': unknown segment 'martians'" in text


def test_intensity_is_only_allowed_on_exercise_nudges() -> None:
    with pytest.raises(InvalidRuleSet, match="only meaningful for exercise"):
        parse_catalog(_doc({**WALK, "category": "sleep"}), source="cat.yaml")


def test_validity_window_needs_time_zones_and_order() -> None:
    naive = {**WALK, "valid_from": "2025-01-01T00:00:00"}
    backwards = {**WALK, "id": "w2", "valid_from": "2025-02-01T00:00:00Z", "valid_until": "2025-01-01T00:00:00Z"}
    with pytest.raises(InvalidRuleSet) as err:
        parse_catalog(_doc(naive, backwards), source="cat.yaml")
    assert any("time zone" in p for p in err.value.problems)
    assert any("valid_until must be after valid_from" in p for p in err.value.problems)


def test_digest_ignores_formatting_but_not_content(tmp_path: Path) -> None:
    a = parse_catalog(_doc(WALK), source="a")
    b = parse_catalog(yaml.safe_load(yaml.safe_dump(_doc(WALK), default_flow_style=True)), source="b")
    c = parse_catalog(_doc({**WALK, "body": "Walk eleven minutes."}), source="c")
    assert a.digest == b.digest != c.digest
    assert a.digest.startswith("sha256:")


def test_a_missing_catalog_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_catalog(tmp_path / "absent.yaml")


def test_catalog_check_exits_0_for_the_sample_and_1_with_one_line_per_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "check", str(CATALOG)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_doc({**WALK, "category": "yoga"}, {**WALK, "id": "n-x", "tags": ["moonwalk"]})))
    failed = runner.invoke(app, ["catalog", "check", str(bad)])
    assert failed.exit_code == 1
    lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and all(str(bad) in line for line in lines)
    missing = runner.invoke(app, ["catalog", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
