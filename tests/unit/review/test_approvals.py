"""What a clinician's approval covers: the rules that asked for review, at the escalation the item carried."""

from __future__ import annotations

from nudge_engine.services.approvals import NOT_APPROVED, Approval, reviewed_rules

FIRED = [
    {"rule": "WT-02", "action": "review", "evidence": ["39156-5 missing"]},
    {"rule": "FS-01", "action": "caution", "evidence": ["E11.9"]},
]


def test_only_the_rules_that_asked_for_review_are_approved() -> None:
    assert reviewed_rules(FIRED) == {"WT-02"}
    assert reviewed_rules(None) == frozenset()


def test_a_rule_that_only_cautioned_is_not_covered_when_it_later_asks_for_review() -> None:
    approval = Approval.of_item(FIRED, None)

    assert approval.covers(frozenset({"WT-02"}), None)
    assert not approval.covers(frozenset({"WT-02", "FS-01"}), None)
    assert not approval.covers(frozenset({"FS-01"}), None)


def test_a_new_or_different_escalation_is_not_covered() -> None:
    routine = Approval.of_item(FIRED, None)
    urgent = Approval.of_item(FIRED, "urgent_clinical")

    assert not routine.covers(frozenset({"WT-02"}), "urgent_clinical")
    assert urgent.covers(frozenset({"WT-02"}), "urgent_clinical")
    assert not urgent.covers(frozenset({"WT-02"}), "emergency")


def test_nothing_is_covered_without_an_approved_review_rule() -> None:
    assert not NOT_APPROVED.covers(frozenset(), None)
    assert not Approval.of_item([{"rule": "FS-01", "action": "caution"}], None).covers(frozenset(), None)
