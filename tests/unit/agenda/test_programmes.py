"""Programme files: the samples are valid; every problem names the file, the programme and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.personalization.programmes import load_programmes
from tests.unit.agenda.support import PROGRAMMES, PROGRAMMES_DIR
from tests.unit.personalization.burden_support import CATALOG


def _sample() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((PROGRAMMES_DIR / "t2d_lifestyle.yaml").read_text())
    return doc


def _problems(tmp_path: Path, doc: dict[str, Any], name: str = "t2d_lifestyle") -> list[str]:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(InvalidRuleSet) as exc:
        load_programmes(tmp_path, CATALOG)
    return exc.value.problems


def test_the_sample_programmes_use_the_cohort_programme_ids_and_are_signed_off() -> None:
    assert set(PROGRAMMES) == {"t2d_lifestyle", "hypertension"}
    for p in PROGRAMMES.values():
        assert p.doc.sign_off is not None and p.doc.status == "active"
        assert p.stage_ids[0] == "onboarding" and p.doc.stages[-1].weeks.to is None


def test_an_unknown_nudge_id_names_the_file_the_programme_and_the_field(tmp_path: Path) -> None:
    doc = _sample()
    doc["behaviours"][0]["nudges"].append("ex-walk-11min")
    (problem,) = _problems(tmp_path, doc)
    assert str(tmp_path / "t2d_lifestyle.yaml") in problem
    assert "programme 't2d_lifestyle'" in problem and "field 'behaviours.0.nudges'" in problem
    assert "unknown nudge 'ex-walk-11min'" in problem


def test_unknown_fields_and_bad_versions_are_errors(tmp_path: Path) -> None:
    doc = _sample()
    doc["colour"] = "blue"
    doc["version"] = "1.2"
    problems = _problems(tmp_path, doc)
    assert any("field 'colour'" in p for p in problems)
    assert any("field 'version'" in p for p in problems)


def test_stages_must_follow_each_other_without_gaps(tmp_path: Path) -> None:
    doc = _sample()
    doc["stages"][1]["weeks"]["from"] = 3
    assert any("field 'stages.1.weeks.from'" in p and "expected week 2" in p for p in _problems(tmp_path, doc))


def test_a_reward_cannot_be_engagement(tmp_path: Path) -> None:
    doc = _sample()
    doc["reward"]["behaviours"]["learn_the_basics"] = 1.0  # welcome, set goal, HbA1c and hypo education
    (problem,) = _problems(tmp_path, doc)
    assert "field 'reward.behaviours.learn_the_basics'" in problem and "engagement" in problem


def test_weights_must_name_known_components(tmp_path: Path) -> None:
    doc = _sample()
    doc["weights"]["clicks"] = 1.0
    (problem,) = _problems(tmp_path, doc)
    assert "field 'weights.clicks'" in problem and "unknown score component" in problem


def test_an_active_programme_needs_a_sign_off(tmp_path: Path) -> None:
    doc = _sample()
    del doc["sign_off"]
    assert any("sign_off" in p for p in _problems(tmp_path, doc))


def test_a_programme_cannot_use_a_nudge_the_catalog_keeps_for_another_programme(tmp_path: Path) -> None:
    doc = _sample()
    doc["behaviours"][0]["nudges"].append("diet-salt-substitute")  # hypertension only
    (problem,) = _problems(tmp_path, doc)
    assert "restricted to programme 'hypertension'" in problem


def test_the_file_name_is_the_programme_id(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _sample(), name="diabetes")
    assert any("must match the file name 'diabetes'" in p for p in problems)
