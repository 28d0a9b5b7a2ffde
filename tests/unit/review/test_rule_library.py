"""What the review pages say about the rule behind an item."""

from __future__ import annotations

from clinical_review.rules import RuleLibrary
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.services.feedback import PATIENT_FLAG_RULE
from tests.support.paths import PROJECT


def test_a_patients_unsafe_flag_reads_as_the_patients_report_not_as_a_missing_rule() -> None:
    library = RuleLibrary.of(load_ruleset(PROJECT / "rules").rules)
    info = library.get(PATIENT_FLAG_RULE)
    assert info.title == "Flagged by the patient as unsafe for them"
    assert "not in the loaded rule set" not in info.title
    assert "Approve to allow it again" in info.rationale


def test_a_rule_the_loaded_set_no_longer_has_is_named_as_missing() -> None:
    library = RuleLibrary.of(load_ruleset(PROJECT / "rules").rules)
    assert library.get("XX-99").title == "XX-99 (not in the loaded rule set)"
    assert library.get("ALC-01").title != "ALC-01 (not in the loaded rule set)"
