"""The build assigns experiment arms, records exposure, and holdouts never withhold safety-relevant nudges."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from nudge_engine.adapters.orm import ExperimentAssignmentRow, PatientDecisionRow, ReadyNudgeRow
from nudge_engine.experiments.assignment import safety_relevant
from nudge_engine.services.build.factory import build_cycle
from tests.support.world import make_container, seed_cohort


def test_held_out_patients_get_only_safety_relevant_nudges_and_arms_are_recorded(
    database_url: str, tmp_path: Path
) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 300)
    build_cycle(container, worker="t").run()
    nudges = {n.id: n for n in container.catalog.nudges()}
    with container.uow() as uow:
        s = uow.session
        held = s.execute(
            select(PatientDecisionRow.patient_id, PatientDecisionRow.withheld).where(PatientDecisionRow.held_out)
        ).all()
        ready_of_held = s.scalars(
            select(ReadyNudgeRow.nudge_id).where(ReadyNudgeRow.patient_id.in_([h.patient_id for h in held]))
        ).all()
        arms = {arm: int(n) for arm, n in s.execute(
            select(ExperimentAssignmentRow.arm, func.count()).where(
                ExperimentAssignmentRow.experiment_id == "ranking_policy"
            ).group_by(ExperimentAssignmentRow.arm)
        )}
        exposed = s.scalar(select(func.count()).select_from(ExperimentAssignmentRow).where(
            ExperimentAssignmentRow.first_exposed_at.is_not(None)))
        decided_arms = s.scalars(select(PatientDecisionRow.experiments)).all()
    container.dispose()

    assert held, "the global holdout and the no-nudge arm hold some patients out"
    assert any(w for _, w in held), "held-out patients record what they would have got"
    for nudge_id in ready_of_held:
        n = nudges[nudge_id]
        assert safety_relevant(str(n.category), sorted(n.tags)), nudge_id
    assert set(arms) == {"baseline", "bandit", "no_nudge"}
    assert arms["baseline"] > arms["no_nudge"] and arms["bandit"] > arms["no_nudge"]
    assert exposed and exposed > 0
    assert sum(1 for a in decided_arms if a.get("ranking_policy")) == sum(arms.values())
