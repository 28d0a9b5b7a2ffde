"""Scheduled jobs run against the database; retraining learns from served decisions and takes over."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select, update

from nudge_engine.adapters.orm import (
    AuditRecordRow,
    ModelVersionRow,
    PatientDecisionRow,
    PatientEventRow,
    ReadyNudgeRow,
    ReviewItemRow,
)
from nudge_engine.adapters.orm.base import new_id
from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.jobs import (
    build_job,
    checkpoint_job,
    expire_reviews_job,
    make_scheduler,
    monitor_job,
    retention_job,
    retrain_job,
)
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.context import condition_pairs
from nudge_engine.services.build import models
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.retraining import retrain_models
from tests.support.world import NOW, make_container, seed_cohort


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[Container]:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 80)
    yield container
    container.dispose()


def test_the_job_table_schedules_every_job_coalescing_and_never_overlapping(world: Container) -> None:
    scheduler = make_scheduler(world, BackgroundScheduler(timezone="UTC"))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"build", "retrain", "expire_reviews", "audit_checkpoint", "monitor", "retention"}
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time > 0


def test_each_job_does_its_work_on_the_database(world: Container) -> None:
    summary = build_job(world)
    assert isinstance(summary, dict) and summary["finished"] and summary["patients"] > 0
    assert isinstance(checkpoint_job(world), int)
    assert expire_reviews_job(world) == 0  # nothing is overdue yet
    with world.uow() as uow:
        uow.session.execute(update(ReviewItemRow).values(expires_at=NOW - timedelta(minutes=1)))
        uow.commit()
    assert expire_reviews_job(world) > 0
    result = retrain_job(world)
    assert result.rows == 0  # nothing was served yet: no model is made from no data
    assert isinstance(monitor_job(world), int)
    retention_job(world)  # nothing is old enough to go yet; the trail below must still verify
    with world.uow() as uow:
        verified = world.audit.verify(uow.session)
    assert verified.ok, verified.summary()


def _serve_top_picks_and_complete_half(world: Container) -> int:
    with world.uow() as uow:
        s = uow.session
        rows = s.execute(
            select(ReadyNudgeRow.id, ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id, PatientDecisionRow.chosen)
            .join(PatientDecisionRow, PatientDecisionRow.id == ReadyNudgeRow.decision_id)
        ).all()
        # The logged top pick of each decision: it carries the permitted set and its propensity
        # (a held-out patient's top pick is withheld, and what is left of their list is no logged pick).
        top = [r for r in rows if r.chosen and r.chosen[0]["nudge"] == r.nudge_id
               and "permitted" in (r.chosen[0].get("components") or {})]
        served_at = NOW + timedelta(hours=1)
        s.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id.in_([r.id for r in top]))
                  .values(status="served", served_at=served_at))
        for i, r in enumerate(top):
            if i % 2 == 0:
                s.add(PatientEventRow(id=new_id(), patient_id=r.patient_id, type="completed", nudge_id=r.nudge_id,
                                      occurred_at=served_at + timedelta(hours=3), received_at=served_at,
                                      properties={}, response={}))
        uow.commit()
    return len(top)


def test_retraining_learns_from_served_decisions_and_the_build_then_ranks_with_the_bandit(
    world: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_cycle(world, worker="t").run()
    served = _serve_top_picks_and_complete_half(world)
    assert served > 0
    result = retrain_models(world.uow, audit=world.audit, catalog=world.catalog, segments=world.segments,
                            programmes=world.programmes, now=NOW + timedelta(days=1))
    assert result.rows == served
    with world.uow() as uow:
        kinds = set(uow.session.scalars(select(ModelVersionRow.kind)))
        retrained = uow.session.scalar(
            select(func.count()).select_from(AuditRecordRow).where(AuditRecordRow.event_type == "model_retrained")
        )
    assert kinds == {"segment_baseline", "bandit"} and retrained == 1
    with world.uow() as uow:
        blob = uow.session.scalar(select(ModelVersionRow.blob).where(ModelVersionRow.kind == "bandit"))
    assert blob is not None
    pairs = LinearThompson.from_bytes(blob).interactions
    assert pairs and pairs == condition_pairs(world.segments.spec)  # the model the simulator measured

    monkeypatch.setattr(models, "BANDIT_MIN_ROWS", 1)
    summary = build_cycle(world, worker="t").run()
    with world.uow() as uow:
        decided = uow.session.execute(
            select(PatientDecisionRow.model_version, PatientDecisionRow.experiments)
            .where(PatientDecisionRow.cycle_id == summary.cycle_id)
        ).all()
    # The default policy is now the bandit; the ranking experiment's baseline arm keeps its baseline.
    by_arm: dict[str | None, set[str]] = {}
    for version, arms in decided:
        by_arm.setdefault((arms or {}).get("ranking_policy"), set()).add(version.split(":")[0])
    expected = {None: {"bandit"}, "bandit": {"bandit"}, "baseline": {"baseline"}, "no_nudge": {"bandit"}}
    assert by_arm and all(kinds == expected[arm] for arm, kinds in by_arm.items())
