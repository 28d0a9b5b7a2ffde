"""Late-binding weights: per programme and per request, recorded with every decision and explained."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.agenda import (
    agenda_components,
    explain_ranking,
    parse_weight_overrides,
    patient_stages,
    patient_weights,
    rescore_recorded,
)
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.pipeline import plan_batch
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.programmes import ProgrammeSet
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from tests.unit.agenda.support import PROGRAMMES, Event, days, patients, twin_programmes
from tests.unit.personalization.burden_support import CATALOG, SEGMENTS
from tests.unit.personalization.fakes import AllowAll

NOW = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)
POLICY = RankingPolicy(PolicyKind.BASELINE, SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids), exploration_floor=0.0)


def _plan(batch: PatientBatch, programmes: ProgrammeSet, overrides: str | None = None) -> BatchPlan:
    weights = patient_weights(batch.programme, programmes, POLICY.score_weights,
                              overrides=parse_weight_overrides(overrides))
    return plan_batch(batch, CATALOG, SEGMENTS, POLICY, AllowAll(), now=NOW, rng=np.random.default_rng(3),
                      per_patient=1, extra_components=agenda_components(batch, CATALOG, programmes, NOW),
                      row_weights=weights)


def _top(plan: BatchPlan, row: int) -> tuple[str, dict[str, dict[str, float]]]:
    i = int(np.flatnonzero((plan.chosen_row == row) & (plan.chosen_rank == 0))[0])
    return plan.nudge_ids[int(plan.chosen_nudge[i])], plan.components_record(i)["components"]


def test_the_records_of_all_chosen_rows_at_once_equal_each_row_s_record() -> None:
    batch = patients(["t2d_lifestyle", "hypertension", "clinic_first", ""], enrolled=NOW - days(30))
    plan = _plan(batch, PROGRAMMES, "agenda:2")
    assert len(plan.chosen_row) > 0
    assert plan.components_records() == [plan.components_record(i) for i in range(len(plan.chosen_row))]


def test_overrides_parse_into_known_components_with_bounded_weights() -> None:
    assert parse_weight_overrides(" agenda:2, novelty:0.5 ") == {"agenda": 2.0, "novelty": 0.5}
    assert parse_weight_overrides(None) == {} and parse_weight_overrides("") == {}


def test_a_component_named_twice_takes_its_last_value_like_a_repeated_query_parameter() -> None:
    assert parse_weight_overrides("agenda:1,novelty:2,agenda:3") == {"agenda": 3.0, "novelty": 2.0}


@pytest.mark.parametrize(("text", "field"), [
    ("clicks:1", "clicks"), ("agenda:-1", "agenda"), ("agenda:nan", "agenda"), ("agenda:1e9", "agenda"),
    ("agenda", "agenda"), ("agenda:lots", "agenda"),
])
def test_bad_overrides_name_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidInput, match=f"weights: field '{field}'"):
        parse_weight_overrides(text)


def test_two_programmes_with_different_weights_rank_the_same_catalog_differently_for_the_same_patient(
    tmp_path: Path,
) -> None:
    twins = twin_programmes(tmp_path, {
        "clinic_first": {"agenda": 3.0, "priority": 0.001},
        "app_first": {"agenda": 0.0, "priority": 1.0},
    })
    batch = patients(["clinic_first", "app_first"], enrolled=NOW - days(20))  # both in weeks 2-6
    plan = _plan(batch, twins)
    clinic, clinic_record = _top(plan, 0)
    app, app_record = _top(plan, 1)
    assert clinic != app
    # Why: the clinical agenda (walking after meals, priority 9) weighs 3 for one, 0 for the other.
    assert clinic_record["agenda"] == {"value": 0.9, "weight": 3.0}
    assert app_record["agenda"]["weight"] == 0.0 and app_record["priority"]["weight"] == 1.0
    assert CATALOG.entries[CATALOG.index[app]].priority > CATALOG.entries[CATALOG.index[clinic]].priority
    why = explain_ranking(plan, 0, stage=patient_stages(batch, twins, NOW).record(0))
    assert why["chosen"] == [clinic] and why["weights"]["agenda"] == 3.0
    assert why["stage"]["stage"] == "activity_build_up"
    assert why["candidates"][0]["components"]["agenda"]["contribution"] == pytest.approx(2.7)


def test_the_sample_programmes_record_their_own_weights_and_stage_priority() -> None:
    batch = patients(["t2d_lifestyle", "hypertension"], enrolled=NOW - days(30))  # weeks 2-6 and 3-8
    plan = _plan(batch, PROGRAMMES)
    t2d, t2d_record = _top(plan, 0)
    htn, htn_record = _top(plan, 1)
    assert t2d == "ex-walk-after-meals" and htn == "diet-salt-substitute"  # walk after meals; less salt
    assert t2d_record["agenda"] == {"value": 0.9, "weight": 0.6}
    assert htn_record["agenda"] == {"value": 0.9, "weight": 1.5}


def test_a_per_request_override_changes_the_chosen_nudge_and_is_recorded() -> None:
    walks: list[Event] = [(NOW - days(4), "delivered", "ex-walk-10min", None),
                          (NOW - days(3), "delivered", "ex-walk-after-meals", None)]
    batch = patients(["t2d_lifestyle"], enrolled=NOW - days(20), events=[walks])
    served, record = _top(_plan(batch, PROGRAMMES), 0)
    varied, new_record = _top(_plan(batch, PROGRAMMES, "novelty:3"), 0)  # a product context that wants variety
    assert served != varied
    assert record["novelty"]["weight"] == 0.2 and new_record["novelty"]["weight"] == 3.0
    assert new_record["novelty"]["value"] > record["novelty"]["value"]
    assert new_record["agenda"]["weight"] == record["agenda"]["weight"] == 0.6


def test_weights_bind_late_policy_then_programme_then_request() -> None:
    rows = np.array(["t2d_lifestyle", "hypertension", ""])
    w = patient_weights(rows, PROGRAMMES, POLICY.score_weights)
    assert w["agenda"].tolist() == [0.6, 1.5, 0.0] and w["baseline"].tolist() == [0.3, 0.1, 1.0]
    w = patient_weights(rows, PROGRAMMES, POLICY.score_weights, overrides={"agenda": 2.0})
    assert w["agenda"].tolist() == [2.0, 2.0, 2.0] and w["baseline"].tolist() == [0.3, 0.1, 1.0]


def test_the_score_is_the_weighted_sum_of_the_recorded_components() -> None:
    batch = patients(["t2d_lifestyle", "hypertension", ""], enrolled=NOW - days(30))
    plan = _plan(batch, PROGRAMMES, "novelty:0.7")
    for i in range(len(plan.chosen_row)):
        comps = plan.components_record(i)["components"]
        total = sum(c["value"] * c["weight"] for c in comps.values())
        assert math.isclose(total, float(plan.chosen_score[i]), abs_tol=1e-6)


def test_queued_nudges_can_be_reranked_at_serve_time_under_a_request_override() -> None:
    walks: list[Event] = [(NOW - days(4), "delivered", "ex-walk-10min", None),
                          (NOW - days(3), "delivered", "ex-walk-after-meals", None)]
    batch = patients(["t2d_lifestyle"], enrolled=NOW - days(20), events=[walks])
    weights = patient_weights(batch.programme, PROGRAMMES, POLICY.score_weights)
    plan = plan_batch(batch, CATALOG, SEGMENTS, POLICY, AllowAll(), now=NOW, rng=np.random.default_rng(3),
                      per_patient=3, extra_components=agenda_components(batch, CATALOG, PROGRAMMES, NOW),
                      row_weights=weights)
    queued = [plan.components_record(i)["components"] for i in np.argsort(plan.chosen_rank)]
    as_built = rescore_recorded(queued, {})
    assert [s for s, _ in as_built] == sorted((s for s, _ in as_built), reverse=True)
    varied = rescore_recorded(queued, parse_weight_overrides("agenda:0,novelty:3"))
    best = max(range(len(varied)), key=lambda k: varied[k][0])
    assert best != 0 and varied[best][1]["novelty"] == 3.0
