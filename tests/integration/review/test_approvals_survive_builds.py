"""An approved nudge waits in the ready queue through later builds; a scoped approval covers repeats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from clinical_review.model import Decide, Verdict
from clinical_review.wiring import build_context
from nudge_engine.adapters.orm import PatientDecisionRow, PatientRow, ReadyNudgeRow, ReviewItemRow
from nudge_engine.services.build.factory import build_cycle
from tests.integration.review.kit import World, make_world


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(database_url, tmp_path / "var")
    yield w
    w.container.dispose()


def _first_pending(world: World) -> tuple[str, str, str]:
    with world.container.uow() as uow:
        row = uow.session.execute(
            select(ReviewItemRow.id, ReviewItemRow.patient_id, ReviewItemRow.nudge_id)
            .where(ReviewItemRow.status == "pending", ReviewItemRow.escalation.is_(None))
            .order_by(ReviewItemRow.created_at, ReviewItemRow.id)
        ).first()
    assert row is not None, "the cohort should give clinicians work"
    return row.id, row.patient_id, row.nudge_id


def _ready(world: World, patient_id: str, nudge_id: str) -> list[tuple[str, str | None]]:
    with world.container.uow() as uow:
        return [(r.status, r.review_item_id) for r in uow.session.execute(
            select(ReadyNudgeRow.status, ReadyNudgeRow.review_item_id)
            .where(ReadyNudgeRow.patient_id == patient_id, ReadyNudgeRow.nudge_id == nudge_id)
        )]


def test_a_build_after_an_approval_keeps_the_approved_nudge_ready(world: World) -> None:
    item_id, patient_id, nudge_id = _first_pending(world)
    review = build_context(world.container).service
    review.decide(item_id, Decide(Verdict.APPROVE, "clinically-appropriate"), actor=world.actor)
    assert _ready(world, patient_id, nudge_id) == [("ready", item_id)]

    world.clock.advance(hours=1)
    build_cycle(world.container, worker="t").run()
    assert _ready(world, patient_id, nudge_id) == [("ready", item_id)]


def test_a_scoped_approval_approves_the_same_item_again_and_queues_its_nudge(world: World) -> None:
    item_id, patient_id, nudge_id = _first_pending(world)
    review = build_context(world.container).service
    review.decide(item_id, Decide(Verdict.APPROVE, "clinically-appropriate", scope_days=7), actor=world.actor)
    # The approved nudge is served and the patient's queue empties; the next build meets the same flag.
    with world.container.uow() as uow:
        uow.session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.patient_id == patient_id)
                            .values(status="served", served_at=world.clock.now))
        uow.commit()
    world.clock.advance(days=2)
    build_cycle(world.container, worker="t").run()
    with world.container.uow() as uow:
        again = uow.session.execute(
            select(ReviewItemRow.id, ReviewItemRow.status, ReviewItemRow.reason_code)
            .where(ReviewItemRow.patient_id == patient_id, ReviewItemRow.nudge_id == nudge_id,
                   ReviewItemRow.id != item_id)
        ).all()
    assert again, "the seeded cohort routes the same nudge to review again for this patient"
    assert [(status, reason) for _, status, reason in again] == [("approved", "scoped-approval")]
    assert ("ready", again[0].id) in _ready(world, patient_id, nudge_id)


def _items_for(world: World, patient_id: str, nudge_id: str) -> list[tuple[str, str]]:
    with world.container.uow() as uow:
        return [(r.id, r.status) for r in uow.session.execute(
            select(ReviewItemRow.id, ReviewItemRow.status)
            .where(ReviewItemRow.patient_id == patient_id, ReviewItemRow.nudge_id == nudge_id)
            .order_by(ReviewItemRow.created_at, ReviewItemRow.id)
        )]


def test_a_rejected_nudge_is_not_asked_again_until_the_patients_record_changes(world: World) -> None:
    item_id, patient_id, nudge_id = _first_pending(world)
    review = build_context(world.container).service
    review.decide(item_id, Decide(Verdict.REJECT, "contraindicated"), actor=world.actor)

    world.clock.advance(hours=1)
    summary = build_cycle(world.container, worker="t").run()

    assert _items_for(world, patient_id, nudge_id) == [(item_id, "rejected")]
    with world.container.uow() as uow:
        dropped = uow.session.scalar(select(PatientDecisionRow.dropped).where(
            PatientDecisionRow.cycle_id == summary.cycle_id, PatientDecisionRow.patient_id == patient_id))
    assert nudge_id in dropped["rejected_in_review"]

    with world.container.uow() as uow:  # the record changes (a context update moves the version)
        uow.session.execute(update(PatientRow).where(PatientRow.id == patient_id)
                            .values(context_version=PatientRow.context_version + 1))
        uow.commit()
    world.clock.advance(hours=1)
    later = build_cycle(world.container, worker="t").run()

    with world.container.uow() as uow:
        again = uow.session.scalar(select(PatientDecisionRow).where(
            PatientDecisionRow.cycle_id == later.cycle_id, PatientDecisionRow.patient_id == patient_id))
        assert again is not None
        assert nudge_id not in again.dropped.get("rejected_in_review", [])  # asked again on the new record
        assert nudge_id in {f["nudge"] for f in again.review}
