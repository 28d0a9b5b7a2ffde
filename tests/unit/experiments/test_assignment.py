"""Deterministic assignment, the global holdout, safety-relevant nudges and overlapping experiments."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.experiments.assignment import assign, bucket, safe_nudges, safety_relevant
from nudge_engine.experiments.checks import Severity, check_config
from nudge_engine.experiments.loader import load_experiments, parse_experiments
from nudge_engine.experiments.model import ExperimentsConfig
from nudge_engine.experiments.srm import sample_ratio_mismatch
from nudge_engine.personalization.ranking import PolicyKind

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(20261201)
IDS = [RNG.bytes(16).hex() for _ in range(20_000)]  # surrogate ids are random 128-bit hex


def config(**overrides: object) -> ExperimentsConfig:
    doc: dict[str, object] = {
        "version": "t1",
        "global_holdout": {"fraction": 0.05, "salt": "global-salt-1"},
        "experiments": [
            {"id": "ranking", "salt": "ranking-salt-1", "control": "baseline", "starts_at": "2026-11-01T00:00:00Z",
             "arms": [{"id": "baseline", "weight": 45, "policy": "baseline"},
                      {"id": "bandit", "weight": 45, "policy": "bandit"},
                      {"id": "no_nudge", "weight": 10, "holdout": True}]},
            {"id": "framing", "salt": "framing-salt-1", "control": "plain", "starts_at": "2026-11-01T00:00:00Z",
             "arms": [{"id": "plain", "weight": 1}, {"id": "social_proof", "weight": 1}]},
        ],
    }
    doc.update(overrides)
    return parse_experiments(doc)


def everyone(n: int = len(IDS)) -> dict[str, object]:
    return {"programmes": np.full(n, "t2d_lifestyle"), "flags": {"has_t2d": np.ones(n, dtype=bool)}, "now": NOW}


def test_the_same_patient_always_lands_in_the_same_arm() -> None:
    first = assign(config(), IDS[:500], **everyone(500))  # type: ignore[arg-type]
    again = assign(config(), list(reversed(IDS[:500])), **everyone(500))  # type: ignore[arg-type]
    by_id = dict(zip(again.patient_ids, again.arms["ranking"], strict=True))
    assert all(by_id[p] == a for p, a in zip(first.patient_ids, first.arms["ranking"], strict=True))
    assert bucket(IDS[0], "ranking-salt-1") == bucket(IDS[0], "ranking-salt-1")


def test_arms_split_the_eligible_traffic_by_their_weights() -> None:
    a = assign(config(), IDS, **everyone())  # type: ignore[arg-type]
    arms = a.arms["ranking"][a.arms["ranking"] != ""]
    shares = {arm: float((arms == arm).mean()) for arm in ("baseline", "bandit", "no_nudge")}
    assert shares["baseline"] == pytest.approx(0.45, abs=0.015)
    assert shares["bandit"] == pytest.approx(0.45, abs=0.015)
    assert shares["no_nudge"] == pytest.approx(0.10, abs=0.01)


def test_experiments_with_different_salts_are_assigned_independently() -> None:
    a = assign(config(), IDS, **everyone())  # type: ignore[arg-type]
    both = (a.arms["ranking"] != "") & (a.arms["framing"] != "")
    bandit = a.arms["ranking"][both] == "bandit"
    social = a.arms["framing"][both] == "social_proof"
    assert float(social[bandit].mean()) == pytest.approx(float(social[~bandit].mean()), abs=0.03)


def test_an_even_split_raises_no_srm_alarm_and_a_45_55_split_does() -> None:
    even = assign(config(), IDS, **everyone())  # type: ignore[arg-type]
    spec = config().experiment("framing")
    counts = {arm: int((even.arms["framing"] == arm).sum()) for arm in spec.arm_ids}
    assert not sample_ratio_mismatch(counts, spec.shares).alarm
    broken = config().replace_experiment(spec.with_weights({"plain": 45, "social_proof": 55}))
    skewed = assign(broken, IDS, **everyone())  # type: ignore[arg-type]
    counts = {arm: int((skewed.arms["framing"] == arm).sum()) for arm in spec.arm_ids}
    result = sample_ratio_mismatch(counts, spec.shares)  # judged against the declared 50/50
    assert result.alarm
    assert result.p_value < 0.001


def test_global_holdout_patients_are_in_no_experiment_and_get_no_policy() -> None:
    a = assign(config(), IDS, **everyone())  # type: ignore[arg-type]
    assert 0.04 < a.global_holdout.mean() < 0.06
    assert not (a.arms["ranking"][a.global_holdout] != "").any()
    assert not (a.arms["framing"][a.global_holdout] != "").any()
    assert a.held_out[a.global_holdout].all()


def test_the_ranking_policy_follows_the_arm_and_the_no_nudge_arm_is_held_out() -> None:
    a = assign(config(), IDS, **everyone())  # type: ignore[arg-type]
    for i in range(2000):
        arm = a.arms["ranking"][i]
        if arm == "bandit":
            assert a.policy_of(i) is PolicyKind.BANDIT
        elif arm == "baseline":
            assert a.policy_of(i) is PolicyKind.BASELINE
        assert bool(a.held_out[i]) == (arm == "no_nudge" or bool(a.global_holdout[i]))


def test_holdouts_never_withhold_medication_adherence_or_clinician_approved_nudges() -> None:
    assert safety_relevant("medication", ["adherence"])
    assert safety_relevant("exercise", ["walking"], clinician_approved=True)
    assert not safety_relevant("exercise", ["walking"])
    assert not safety_relevant("medication", ["side_effects"])
    safe = safe_nudges(["medication", "exercise", "diet"], [["adherence"], [], []])
    a = assign(config(), IDS[:2000], **everyone(2000))  # type: ignore[arg-type]
    withheld = a.withheld(safe)
    assert not withheld[:, 0].any()  # the adherence nudge reaches everybody
    assert (withheld[:, 1] == a.held_out).all()


def test_a_patient_enters_only_the_first_of_two_experiments_that_pull_the_same_lever() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][1]["arms"][1]["policy"] = "random"
    a = assign(parse_experiments(doc), IDS[:5000], **everyone(5000))  # type: ignore[arg-type]
    assert a.arms["ranking"].any() and not ((a.arms["ranking"] != "") & (a.arms["framing"] != "")).any()


def test_experiments_check_reports_overlapping_experiments_that_pull_the_same_lever() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][1]["arms"][1]["policy"] = "random"
    problems = check_config(parse_experiments(doc))
    assert [p.code for p in problems if p.severity is Severity.ERROR] == ["overlap"]


def test_experiments_in_different_programmes_or_periods_do_not_overlap() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][1]["arms"][1]["policy"] = "random"
    doc["experiments"][0]["eligibility"] = {"programmes": ["t2d_lifestyle"]}
    doc["experiments"][1]["eligibility"] = {"programmes": ["hypertension"]}
    assert check_config(parse_experiments(doc)) == []
    doc["experiments"][1]["eligibility"] = {}
    doc["experiments"][0]["ends_at"] = "2026-11-15T00:00:00Z"
    doc["experiments"][1]["starts_at"] = "2026-11-15T00:00:00Z"
    assert check_config(parse_experiments(doc)) == []


def test_eligibility_by_programme_and_flags_decides_who_enters() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][1]["eligibility"] = {"programmes": ["hypertension"], "flags_none": ["has_ckd"]}
    programmes = np.array(["hypertension", "hypertension", "t2d_lifestyle", ""] * 50)
    flags = {"has_ckd": np.array([False, True, False, False] * 50)}
    ids = IDS[:200]
    a = assign(parse_experiments(doc), ids, programmes=programmes, flags=flags, now=NOW)
    entered = a.arms["framing"] != ""
    assert (entered <= ((programmes == "hypertension") & ~flags["has_ckd"])).all()
    assert entered.any()


def test_experiments_outside_their_dates_assign_nobody() -> None:
    a = assign(config(), IDS[:100], **{**everyone(100), "now": datetime(2026, 10, 1, tzinfo=UTC)})  # type: ignore[arg-type]
    assert a.arms == {}


def test_an_invalid_experiment_names_the_file_the_experiment_and_the_field() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][0]["control"] = "nobody"
    with pytest.raises(InvalidRuleSet) as err:
        parse_experiments(doc, source="exp.yaml")
    assert "exp.yaml: experiment 'ranking'" in str(err.value)


def test_two_experiments_may_not_share_a_salt() -> None:
    doc = config().model_dump(mode="json")
    doc["experiments"][1]["salt"] = doc["experiments"][0]["salt"]
    with pytest.raises(InvalidRuleSet, match="salt"):
        parse_experiments(doc)


def test_the_packaged_sample_experiments_validate_without_errors() -> None:
    sample = load_experiments()
    assert {e.id for e in sample.experiments} == {"ranking_policy", "reminder_framing"}
    assert not [p for p in check_config(sample) if p.severity is Severity.ERROR]


def test_surrogate_ids_from_new_id_are_what_assignment_expects() -> None:
    assert 0.0 <= bucket(os.urandom(16).hex(), "any-salt-1") < 1.0
