"""Deciding review items on SQLite and PostgreSQL: ready queue, scopes, reasons, audit, conflicts."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from clinical_review.model import Decide, QueueQuery, ReviewStatus, Verdict
from clinical_review.service import ReviewService
from nudge_engine.adapters.orm import ApprovalScopeRow, ReviewItemRow, new_id
from nudge_engine.adapters.orm.feedback import PatientFeedbackRow
from nudge_engine.domain.errors import Conflict, InvalidInput, NotFound
from nudge_engine.domain.nudge import guarded_digest
from tests.integration.review.kit import World, audit_records, items, make_world, ready_rows, review_service

APPROVE = Decide(Verdict.APPROVE, "clinically-appropriate")
REJECT = Decide(Verdict.REJECT, "contraindicated")


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    w = make_world(database_url, tmp_path)
    yield w  # type: ignore[misc]
    w.container.dispose()


@pytest.fixture
def service(world: World) -> ReviewService:
    svc: ReviewService = review_service(world)
    return svc


def test_the_build_leaves_pending_items_to_review(world: World) -> None:
    pending = items(world.container, status="pending")
    assert len(pending) >= 6
    assert all(i.rule_ids and i.due_at < i.expires_at for i in pending)


def test_approving_puts_the_nudge_in_the_ready_queue_and_audits_the_reason_code(
    world: World, service: ReviewService
) -> None:
    item = items(world.container, status="pending")[0]

    outcome = service.decide(item.id, APPROVE, actor=world.actor)

    assert outcome.item.status is ReviewStatus.APPROVED
    assert outcome.item.version == item.version + 1
    [ready] = ready_rows(world.container, item.id)
    assert (ready.id, ready.status, ready.patient_id, ready.nudge_id) == (
        outcome.delivery_id, "ready", item.patient_id, item.nudge_id)
    [record] = [r for r in audit_records(world.container, "approved") if r.details["review_item"] == item.id]
    assert (record.actor_role, record.actor_id, record.patient_ref, record.nudge_id, record.decision) == (
        "clinician", world.clinician_id, item.patient_id, item.nudge_id, "deliver")
    assert record.details["reason_code"] == "clinically-appropriate"
    assert list(record.rule_ids) == list(item.rule_ids)
    # traced to the rule set and the record the approval was re-checked under, as the queued row is
    assert (record.ruleset_digest, record.details["context_version"]) == (ready.ruleset_digest, ready.context_version)
    assert ready.content_digest == guarded_digest(service.nudges[item.nudge_id])  # the content it re-checked


def test_approving_a_nudge_the_patient_flagged_records_the_approval_but_queues_nothing(
    world: World, service: ReviewService
) -> None:
    item = items(world.container, status="pending")[0]
    with world.container.uow() as uow:
        uow.session.add(PatientFeedbackRow(patient_id=item.patient_id, nudge_id=item.nudge_id, kind="unsafe_for_me",
                                           created_at=world.clock()))
        uow.commit()

    outcome = service.decide(item.id, APPROVE, actor=world.actor)

    assert outcome.item.status is ReviewStatus.APPROVED
    assert outcome.delivery_id is None
    assert ready_rows(world.container, item.id) == []
    [record] = [r for r in audit_records(world.container, "approved") if r.details["review_item"] == item.id]
    assert (record.decision, record.details["patient_flagged"]) == ("withhold", True)


def test_rejecting_never_queues_the_nudge(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]

    service.decide(item.id, REJECT, actor=world.actor)

    assert ready_rows(world.container, item.id) == []
    [decided] = items(world.container, id=item.id)
    assert (decided.status, decided.reason_code, decided.decided_by) == ("rejected", "contraindicated",
                                                                         world.clinician_id)
    assert [r.decision for r in audit_records(world.container, "rejected")] == ["withhold"]


def test_a_second_decision_gets_a_conflict_and_changes_nothing(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]
    service.decide(item.id, APPROVE, actor=world.actor)
    before = len(audit_records(world.container))

    with pytest.raises(Conflict, match="already decided"):
        service.decide(item.id, REJECT, actor=world.actor)

    [after] = items(world.container, id=item.id)
    assert (after.status, after.reason_code, after.version) == ("approved", "clinically-appropriate", 1)
    assert len(ready_rows(world.container, item.id)) == 1
    assert len(audit_records(world.container)) == before


def test_a_decision_made_on_an_older_version_conflicts(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]
    with pytest.raises(Conflict):
        service.decide(item.id, Decide(Verdict.REJECT, "contraindicated", expected_version=7), actor=world.actor)
    assert items(world.container, id=item.id)[0].status == "pending"


def test_two_decisions_at_the_same_moment_give_one_decision_and_one_conflict(
    world: World, service: ReviewService
) -> None:
    item = items(world.container, status="pending")[0]
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def decide(name: str, command: Decide) -> None:
        start.wait()
        try:
            results[name] = service.decide(item.id, command, actor=world.actor).item.status
        except Conflict as exc:
            results[name] = exc

    threads = [threading.Thread(target=decide, args=("approve", APPROVE)),
               threading.Thread(target=decide, args=("reject", REJECT))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    conflicts = [r for r in results.values() if isinstance(r, Conflict)]
    decided = [r for r in results.values() if isinstance(r, ReviewStatus)]
    assert len(conflicts) == 1 and len(decided) == 1
    [row] = items(world.container, id=item.id)
    assert (row.status, row.version) == (decided[0].value, 1)
    records = [r for r in audit_records(world.container, "approved", "rejected") if r.details["review_item"] == item.id]
    assert [r.event_type for r in records] == [decided[0].value]
    assert len(ready_rows(world.container, item.id)) == (1 if decided[0] is ReviewStatus.APPROVED else 0)


def test_a_scoped_approval_records_the_nudge_for_the_patient_for_n_days(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]

    outcome = service.decide(item.id, Decide(Verdict.APPROVE, "clearance-on-file", scope_days=30), actor=world.actor)

    with world.container.uow() as uow:
        [scope] = uow.session.execute(select(ApprovalScopeRow.__table__)).all()
    assert (scope.id, scope.patient_id, scope.nudge_id, scope.created_by) == (
        outcome.scope_id, item.patient_id, item.nudge_id, world.clinician_id)
    assert scope.valid_until - world.clock() == timedelta(days=30)
    assert sorted(scope.rule_ids) == sorted(item.rule_ids)
    [record] = audit_records(world.container, "approved")
    assert (record.details["scope"], record.details["scope_days"]) == (scope.id, 30)


def test_a_reason_outside_the_code_set_is_refused_and_nothing_changes(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]
    for command in (Decide(Verdict.APPROVE, "contraindicated"), Decide(Verdict.REJECT, "because I said so")):
        with pytest.raises(InvalidInput, match="reason_code"):
            service.decide(item.id, command, actor=world.actor)
    assert items(world.container, id=item.id)[0].status == "pending"
    assert audit_records(world.container, "approved", "rejected") == []


def test_the_comment_stays_with_the_item_and_never_reaches_the_audit_trail(
    world: World, service: ReviewService
) -> None:
    item = items(world.container, status="pending")[0]
    comment = "Spoke with Mrs Ada Lovelace on 0123 456789; cardiology letter on file"

    service.decide(item.id, Decide(Verdict.APPROVE, "clearance-on-file", comment=comment), actor=world.actor)

    assert items(world.container, id=item.id)[0].comment == comment
    trail = repr([tuple(r) for r in audit_records(world.container)])
    assert "Lovelace" not in trail and "cardiology" not in trail
    [record] = audit_records(world.container, "approved")
    assert record.details["commented"] is True


def test_viewing_identifiers_is_audited_without_the_identifiers(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]

    shown = service.reveal_identifiers(item.id, actor=world.actor)

    assert shown is not None and shown.names
    [record] = audit_records(world.container, "identifiers_viewed")
    assert (record.actor_role, record.actor_id, record.patient_ref) == ("clinician", world.clinician_id,
                                                                        item.patient_id)
    assert record.details == {"review_item": item.id, "revealed": True}
    trail = repr([tuple(r) for r in audit_records(world.container)])
    assert all(name not in trail for name in shown.names)
    assert shown.source_id not in trail


def test_an_unknown_item_is_not_found(world: World, service: ReviewService) -> None:
    with pytest.raises(NotFound):
        service.decide("0" * 32, APPROVE, actor=world.actor)
    with pytest.raises(NotFound):
        service.reveal_identifiers("f" * 32, actor=world.actor)
    assert audit_records(world.container, "identifiers_viewed") == []


def test_an_item_past_its_time_to_live_expires_and_is_never_delivered(world: World, service: ReviewService) -> None:
    item = items(world.container, status="pending")[0]
    world.clock.now = item.expires_at

    with pytest.raises(Conflict, match="time to live"):
        service.decide(item.id, APPROVE, actor=world.actor)
    expired = service.expire_overdue()

    assert expired == len(items(world.container, status="expired")) >= 1
    assert items(world.container, id=item.id)[0].status == "expired"
    assert ready_rows(world.container, item.id) == []
    with pytest.raises(Conflict, match="already decided"):
        service.decide(item.id, APPROVE, actor=world.actor)
    assert item.id in {r.details["review_item"] for r in audit_records(world.container, "expired")}


def test_bulk_decision_by_rule_decides_every_pending_item_the_rule_flagged(
    world: World, service: ReviewService
) -> None:
    rule = service.counts().pending_by_rule
    chosen = max(rule, key=lambda r: rule[r])
    flagged = [i.id for i in items(world.container, status="pending") if chosen in i.rule_ids]

    result = service.decide_by_rule(chosen, Decide(Verdict.REJECT, "needs-assessment"), actor=world.actor)

    assert sorted(result.decided) == sorted(flagged) and result.skipped == ()
    assert all(chosen not in i.rule_ids for i in items(world.container, status="pending"))
    records = audit_records(world.container, "rejected")
    assert sorted(r.details["review_item"] for r in records) == sorted(flagged)
    assert {r.details["bulk_rule"] for r in records} == {chosen}


def test_the_queue_filters_by_status_rule_priority_and_age_and_pages(world: World, service: ReviewService) -> None:
    pending = items(world.container, status="pending")
    rule = pending[0].rule_ids[0]

    by_rule = service.list_items(QueueQuery(rule=rule, per_page=100))
    first, second = service.list_items(QueueQuery(per_page=2)), service.list_items(QueueQuery(per_page=2, page=2))

    assert {i.id for i in by_rule.items} == {i.id for i in pending if rule in i.rule_ids}
    assert first.total == len(pending) and len(first.items) == 2
    assert not {i.id for i in first.items} & {i.id for i in second.items}
    assert service.list_items(QueueQuery(priority=0)).total == sum(1 for i in pending if i.priority == 0)
    assert service.list_items(QueueQuery(older_than_hours=1)).total == 0
    world.clock.advance(hours=2)
    assert service.list_items(QueueQuery(older_than_hours=1)).total == len(pending)
    service.decide(pending[0].id, REJECT, actor=world.actor)
    assert [i.id for i in service.list_items(QueueQuery(status=ReviewStatus.REJECTED)).items] == [pending[0].id]


def test_approving_by_rule_decides_only_items_that_rule_alone_sent_to_review(
    world: World, service: ReviewService
) -> None:
    """An item another rule also sent to review, one the rule only cautioned, or an urgent one waits for
    its own decision: approving by rule must not decide what no clinician looked at."""
    patient = items(world.container, status="pending")[0].patient_id
    now = world.clock()

    def item(fired: list[tuple[str, str]], escalation: str | None = None) -> str:
        item_id = new_id()
        with world.container.uow() as uow:
            uow.session.add(ReviewItemRow(
                id=item_id, patient_id=patient, nudge_id="mh-gratitude-note", status="pending", priority=2,
                rule_ids=sorted({r for r, _ in fired}),
                fired=[{"rule": r, "action": a, "evidence": []} for r, a in fired],
                escalation=escalation, ruleset_digest="sha256:x", context_version=0, created_at=now,
                due_at=now + timedelta(days=1), expires_at=now + timedelta(days=3), version=0,
            ))
            uow.commit()
        return item_id

    alone = item([("ZZ-01", "review")])
    others = {
        item([("ZZ-01", "review"), ("ZZ-02", "review")]),
        item([("ZZ-02", "review"), ("ZZ-01", "caution")]),
        item([("ZZ-01", "review")], escalation="urgent_clinical"),
    }

    result = service.decide_by_rule("ZZ-01", APPROVE, actor=world.actor)

    assert result.decided == (alone,)
    assert {s.item_id for s in result.skipped if s.reason == "decide_alone"} == others
    assert others <= {i.id for i in items(world.container, status="pending")}
