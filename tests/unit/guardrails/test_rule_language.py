"""The rule language refuses what it does not know and names file, rule id and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.guardrails.ruleset import RuleSet
from tests.unit.guardrails.conftest import rules_dir_copy


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _problems(root: Path) -> list[str]:
    with pytest.raises(InvalidRuleSet) as info:
        load_ruleset(root)
    return info.value.problems


def test_the_packaged_rule_set_has_the_33_rules_of_the_spec(ruleset: RuleSet) -> None:
    expected = {"MED-01", "MH-01", "MIN-01", "ALC-01", "ALC-02", "ALC-03", "HT-01", "HT-02", "HT-03",
                "FS-01", "WT-01", "WT-02", "WT-03", "DT-01", "DT-02", "DT-03", "DT-04", "DT-05", "SL-01"}
    expected |= {f"EX-{i:02d}" for i in range(1, 15)}
    assert {r.id for r in ruleset.rules} == expected


def test_every_rule_carries_version_rationale_sources_owner_and_sign_off(ruleset: RuleSet) -> None:
    for rule in ruleset.rules:
        assert rule.version.count(".") == 2 and rule.rationale.strip() and rule.sources and rule.owner
        assert rule.sign_off.status in {"draft", "approved"}


def test_unknown_category_names_file_rule_and_field(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "exercise/EX-01/rule.yaml", "category: [exercise]", "category: [exercize]")
    problems = _problems(root)
    assert any(p.startswith("exercise/EX-01/rule.yaml: EX-01: field 'branches[0].target.category[0]'")
               for p in problems), problems


def test_unknown_tag_is_an_error(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "heat/HT-03/rule.yaml", "any_tag: [sauna, hot_tub]", "any_tag: [sauna, steam_room]")
    problems = _problems(root)
    assert any("HT-03" in p and "target.any_tag" in p and "steam_room" in p for p in problems), problems


def test_unknown_operator_is_an_error(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "exercise/EX-03/rule.yaml", 'op: ">=", value: 180', 'op: "=>", value: 180')
    problems = _problems(root)
    assert any("EX-03" in p and ".obs.op'" in p for p in problems), problems


def test_unknown_code_system_in_a_value_set_is_an_error(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "valuesets/mental-health.yaml", "    icd10cm: [F31]", "    icd9cm: [\"296\"]")
    problems = _problems(root)
    assert any(p.startswith("valuesets/mental-health.yaml: valueset bipolar-disorder: field 'icd9cm'")
               for p in problems), problems


def test_a_wildcard_code_is_refused(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "valuesets/metabolic.yaml", "E08.641, E09.641", "E1x.641, E09.641")
    assert any("severe-hypoglycaemia" in p and "icd10cm" in p for p in _problems(root))


def test_a_reference_to_an_unknown_value_set_is_an_error(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "sleep/SL-01/rule.yaml", "valuesets: [bipolar-disorder]", "valuesets: [bipolar]")
    problems = _problems(root)
    assert "sleep/SL-01/rule.yaml: SL-01: field 'branches[0].when.condition.valuesets': unknown value set 'bipolar'" \
        in problems


def test_a_rule_id_must_match_its_folder(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "sleep/SL-01/rule.yaml", "id: SL-01", "id: SL-02")
    assert any("field 'id': must match its folder name 'SL-01'" in p for p in _problems(root))


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "sleep/SL-01/rule.yaml", "version: 1.0.0", "version: one")
    _edit(root, "heat/HT-02/rule.yaml", "owner: clinical", "ownr: clinical")
    problems = _problems(root)
    assert any("SL-01" in p and "'version'" in p for p in problems)
    assert any("HT-02" in p and "'ownr'" in p for p in problems)


def test_a_caution_branch_needs_caution_text(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    path = root / "diet/DT-04/rule.yaml"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.lstrip().startswith("caution:")))
    assert any("DT-04" in p and "caution" in p for p in _problems(root))


def test_an_approved_sign_off_needs_a_clinician_and_a_date(tmp_path: Path) -> None:
    root = rules_dir_copy(tmp_path)
    _edit(root, "sleep/SL-01/rule.yaml", "sign_off: {status: draft}", "sign_off: {status: approved}")
    assert any("SL-01" in p and "sign_off" in p for p in _problems(root))


def test_the_digest_changes_when_a_threshold_changes(tmp_path: Path, ruleset: RuleSet) -> None:
    root = rules_dir_copy(tmp_path)
    assert load_ruleset(root).digest == ruleset.digest
    _edit(root, "exercise/EX-03/rule.yaml", "value: 180, unit", "value: 175, unit")
    assert load_ruleset(root).digest != ruleset.digest


def test_the_digest_covers_the_jurisdiction_parameter(ruleset: RuleSet) -> None:
    assert ruleset.root is not None
    assert load_ruleset(ruleset.root, parameters={"legal_drinking_age": 18}).digest != ruleset.digest
    assert ruleset.digest.startswith("sha256:") and len(ruleset.digest) == 7 + 64
