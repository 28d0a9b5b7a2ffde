"""plan_batch: one call per batch, guardrails asked once for surviving pairs, every outcome explained."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.candidates import REASONS, DropReason
from nudge_engine.personalization.context import context_names
from nudge_engine.personalization.pipeline import plan_batch
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.starvation import starvation_report
from tests.unit.personalization.burden_support import CATALOG, SEGMENTS
from tests.unit.personalization.fakes import FakeGuardrails, synthetic_batch

NOW = datetime(2025, 6, 4, 15, 0, tzinfo=UTC)


def _plan(n: int = 400, *, kind: PolicyKind = PolicyKind.BANDIT, seed: int = 1) -> tuple[BatchPlan, FakeGuardrails]:
    batch, flags, warfarin = synthetic_batch(n, CATALOG, now=NOW, rng=np.random.default_rng(seed))
    guard = FakeGuardrails(CATALOG, flags, warfarin)
    bandit = LinearThompson(context_names(SEGMENTS.ids), CATALOG.ids, CATALOG.category_code)
    policy = RankingPolicy(kind, SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids), bandit)
    plan = plan_batch(batch, CATALOG, SEGMENTS, policy, guard, now=NOW, rng=np.random.default_rng(seed))
    return plan, guard


def test_every_pair_has_exactly_one_outcome_and_the_guardrails_are_asked_once() -> None:
    plan, guard = _plan()
    n, m = len(plan), len(CATALOG)
    seen = np.zeros((n, m), dtype=int)
    for rows, nudges in ((plan.chosen_row, plan.chosen_nudge), (plan.review_row, plan.review_nudge),
                         (plan.blocked_row, plan.blocked_nudge), (plan.dropped_row, plan.dropped_nudge)):
        np.add.at(seen, (rows, nudges), 1)
    assert seen.max() == 1
    unlisted = seen == 0
    assert (plan.permitted[unlisted]).all()  # permitted but not chosen: the only pairs in no table
    assert len(guard.calls) == 1 and guard.calls[0] == int((~np.isin(np.arange(n * m), plan.dropped_row.astype(
        np.int64) * m + plan.dropped_nudge)).sum())


def test_chosen_nudges_are_permitted_ranked_and_carry_propensity_and_components() -> None:
    plan, _ = _plan()
    assert (np.bincount(plan.chosen_row, minlength=len(plan)) <= 3).all()
    assert plan.permitted[plan.chosen_row, plan.chosen_nudge].all()
    top = plan.chosen_rank == 0
    assert ((plan.chosen_propensity[top] > 0) & (plan.chosen_propensity[top] <= 1)).all()
    record = plan.components_record(int(np.flatnonzero(top)[0]))
    assert set(record["components"]) == {"predicted", "baseline", "priority"}
    assert record["components"]["predicted"]["weight"] == 1.0
    assert CATALOG.ids[plan.chosen_nudge[np.flatnonzero(top)[0]]] in record["permitted"]
    assert plan.model_version.startswith("bandit:lints-")


def test_guardrail_outcomes_carry_their_rules_and_are_never_chosen() -> None:
    plan, _ = _plan()
    sauna_beer = CATALOG.index["heat-sauna-and-beer"]
    assert (plan.blocked_nudge == sauna_beer).sum() > 0
    assert all("HT-02" in fired for fired, nudge in zip(plan.blocked_fired, plan.blocked_nudge, strict=True)
               if nudge == sauna_beer)
    assert not np.isin(plan.chosen_nudge, [sauna_beer]).any()
    assert all(fired for fired in plan.review_fired)
    assert (np.bincount(plan.review_row[plan.review_routed], minlength=len(plan)) <= 1).all()
    patient = plan.for_patient(int(plan.blocked_row[0]))
    assert "heat-sauna-and-beer" in patient.removed_by_guardrails


def test_a_chosen_nudge_with_a_caution_keeps_its_caution_text() -> None:
    plan, _ = _plan(1500)
    greens = CATALOG.index["diet-leafy-greens"]
    with_caution = [i for i, c in enumerate(plan.chosen_caution) if c]
    assert all(plan.chosen_nudge[i] == greens and plan.chosen_fired[i] == ("DT-04",) for i in with_caution)
    assert plan.caution[:, greens].any()


def test_dropped_candidates_name_their_reason() -> None:
    plan, _ = _plan()
    reasons = plan.reason_counts()
    assert reasons[DropReason.NOT_ELIGIBLE] > 0 and reasons[DropReason.COOLDOWN] > 0
    patient = plan.for_patient(0)
    assert all(isinstance(r, DropReason) for r in patient.dropped.values())
    assert set(REASONS) >= set(patient.dropped.values())


def test_plans_are_reproducible_from_the_seed() -> None:
    a, _ = _plan(seed=3)
    b, _ = _plan(seed=3)
    assert np.array_equal(a.chosen_nudge, b.chosen_nudge)
    assert np.allclose(a.chosen_propensity, b.chosen_propensity, equal_nan=True)


def test_segment_membership_is_reported_per_patient() -> None:
    plan, _ = _plan(50)
    assert plan.membership.shape == (50, len(SEGMENTS.ids))
    assert set(plan.segments_of(0)) <= set(SEGMENTS.ids)
    assert len([s for s in plan.segments_of(0) if s in ("new_member", "engaged", "lapsing", "dormant")]) == 1


def test_a_naive_time_and_a_mismatched_batch_are_input_errors() -> None:
    batch, flags, warfarin = synthetic_batch(5, CATALOG, now=NOW, rng=np.random.default_rng(0))
    policy = RankingPolicy(PolicyKind.BASELINE, SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids))
    guard = FakeGuardrails(CATALOG, flags, warfarin)
    with pytest.raises(InvalidInput, match="field 'now'"):
        plan_batch(batch, CATALOG, SEGMENTS, policy, guard, now=NOW.replace(tzinfo=None), rng=np.random.default_rng())
    with pytest.raises(InvalidInput, match="field 'tz'"):
        plan_batch(replace(batch, tz=batch.tz[:3]), CATALOG, SEGMENTS, policy, guard, now=NOW,
                   rng=np.random.default_rng())


def test_starvation_report_lists_eligible_patients_without_deliveries() -> None:
    plan, _ = _plan(300)
    report = starvation_report(plan, days=3)
    rows = {r.patient_idx for r in report}
    expected = set(plan.patient_idx[(plan.eligible_count > 0) & (plan.days_since_delivery >= 3)].tolist())
    assert rows == expected and rows
    assert all(r.reasons for r in report)


def test_extra_components_join_the_score_with_their_weight() -> None:
    batch, flags, warfarin = synthetic_batch(200, CATALOG, now=NOW, rng=np.random.default_rng(4))
    guard = FakeGuardrails(CATALOG, flags, warfarin)
    agenda = np.zeros((200, len(CATALOG)))
    agenda[:, CATALOG.index["stress-box-breathing"]] = 10.0
    base = SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids)
    from nudge_engine.personalization.scoring import ScoreWeights

    weights = ScoreWeights({"predicted": 0.0, "baseline": 1.0, "priority": 0.0, "agenda": 1.0})
    policy = RankingPolicy(PolicyKind.BASELINE, base, weights=weights, exploration_floor=0.0)
    plan = plan_batch(batch, CATALOG, SEGMENTS, policy, guard, now=NOW, rng=np.random.default_rng(4),
                      extra_components={"agenda": agenda})
    top = plan.chosen_rank == 0
    permitted_rows = plan.permitted[:, CATALOG.index["stress-box-breathing"]]
    assert (plan.chosen_nudge[top][permitted_rows[plan.chosen_row[top]]] == CATALOG.index["stress-box-breathing"]).all()
    record = plan.components_record(int(np.flatnonzero(top)[0]))
    assert record["components"]["agenda"]["weight"] == 1.0
