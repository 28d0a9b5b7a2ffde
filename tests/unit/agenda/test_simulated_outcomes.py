"""In the simulator the agenda-driven policy wins on healthy behaviours, the engagement policy on opens."""

from __future__ import annotations

from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.sim_outcomes import Objective, OutcomeRunner, make_outcome_world, run_outcomes
from nudge_engine.personalization.simulator import WorldSettings, make_world
from tests.unit.agenda.support import PROGRAMMES
from tests.unit.personalization.burden_support import CATALOG, DATA


def test_agenda_driven_policy_leads_on_healthy_behaviours_and_engagement_policy_on_opens() -> None:
    world = make_world(CATALOG, load_segment_spec(DATA / "segments.yaml"), WorldSettings(n_patients=2000, seed=11))
    ow = make_outcome_world(world, PROGRAMMES, seed=11)
    runners = {
        "engagement": OutcomeRunner(ow, Objective.OPENS, agenda=False),
        "agenda": OutcomeRunner(ow, Objective.HEALTH, agenda=True),
    }
    logs = run_outcomes(ow, runners, n_decisions=6000, batch_size=1000, seed=11)
    eng, agd = logs["engagement"].summary(), logs["agenda"].summary()
    assert agd["healthy"]["low"] > eng["healthy"]["high"]
    assert eng["opened"]["low"] > agd["opened"]["high"]
