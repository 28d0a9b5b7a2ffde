"""Segments: declarative ones from flags and states; learned clusters only with enough history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.personalization.features import PatientFeatures, compute_features
from nudge_engine.personalization.segment_spec import SegmentSpec, load_segment_spec
from nudge_engine.personalization.segments import BehaviourClusters, SegmentModel, fit_behaviour_clusters
from tests.unit.personalization.fakes import FLAGS, synthetic_batch

DATA = Path(__file__).resolve().parents[3] / "nudge_engine" / "data"
SPEC = load_segment_spec(DATA / "segments.yaml")
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def _cohort(n: int = 600, seed: int = 7) -> tuple[PatientFeatures, dict[str, np.ndarray], np.ndarray]:
    from nudge_engine.personalization.catalog import load_catalog

    catalog = load_catalog(DATA / "catalog.yaml")
    rng = np.random.default_rng(seed)
    batch, flags, _ = synthetic_batch(n, catalog, now=NOW, rng=rng, events_per_patient=14)
    features = compute_features(
        batch.events, n_patients=n, enrolled_at_s=batch.enrolled_at_s, now_s=NOW.timestamp(), settings=SPEC.features
    )
    return features, flags, batch.programme


def test_declarative_segments_combine_flags_programme_and_states() -> None:
    features, flags, programme = _cohort()
    model = SegmentModel(SPEC)
    m = model.assign(features, programme=programme, flags=flags)
    col = {s: j for j, s in enumerate(model.ids)}
    assert np.array_equal(m[:, col["t2d"]], flags["has_t2d"])
    assert np.array_equal(m[:, col["prediabetes"]], flags["has_prediabetes"] & ~flags["has_t2d"])
    inactive = (flags["has_t2d"] | flags["has_htn"]) & (features.activity_level == 0)
    assert np.array_equal(m[:, col["cardiometabolic_inactive"]], inactive)
    states = m[:, [col[s] for s in ("new_member", "engaged", "lapsing", "dormant")]]
    assert (states.sum(axis=1) == 1).all()


def test_a_flag_the_build_did_not_supply_is_an_input_error() -> None:
    features, flags, programme = _cohort(50)
    del flags["has_htn"]
    with pytest.raises(InvalidInput, match="has_htn"):
        SegmentModel(SPEC).assign(features, programme=programme, flags=flags)


def test_a_segment_using_an_undeclared_flag_is_an_invalid_rule_set(tmp_path: Path) -> None:
    bad = tmp_path / "segments.yaml"
    bad.write_text(
        "version: '1'\nflags: {has_t2d: x}\nsegments:\n  - id: smokers\n    description: s\n"
        "    when: {flags_any: [is_smoker]}\n"
    )
    with pytest.raises(InvalidRuleSet, match="segment 'smokers': field 'when': flag 'is_smoker'"):
        load_segment_spec(bad)


def test_learned_clusters_apply_only_to_patients_with_enough_history() -> None:
    features, flags, programme = _cohort()
    clusters = fit_behaviour_clusters(features, SPEC.clusters, now=NOW)
    assert clusters is not None
    model = SegmentModel(SPEC, clusters)
    m = model.assign(features, programme=programme, flags=flags)
    learned = m[:, len(model.declarative_ids):]
    enough = features.history_events >= SPEC.clusters.min_events
    assert enough.any() and (~enough).any()
    assert (learned[enough].sum(axis=1) == 1).all()
    assert not learned[~enough].any()


def test_clusters_are_reproducible_ordered_by_engagement_and_serialisable() -> None:
    features, _, _ = _cohort()
    a = fit_behaviour_clusters(features, SPEC.clusters, now=NOW)
    b = fit_behaviour_clusters(features, SPEC.clusters, now=NOW)
    assert a is not None and b is not None
    assert np.allclose(a.centroids, b.centroids)
    assert SegmentModel(SPEC, a).version == SegmentModel(SPEC, b).version
    # behaviour_1 is the least engaged: it has the lowest completion counts of the clusters.
    assigned = a.assign(features)
    completed = [features.counts_long[assigned == k, 3].mean() for k in range(SPEC.clusters.k)]
    assert completed[0] == min(completed)
    again = BehaviourClusters.from_json(a.to_json())
    assert np.array_equal(again.assign(features), assigned)


def test_too_few_patients_with_history_means_declarative_segments_only() -> None:
    features, _, _ = _cohort(30)
    assert fit_behaviour_clusters(features, SPEC.clusters, now=NOW) is None


def test_the_sample_spec_declares_the_flags_the_fakes_supply() -> None:
    assert set(SPEC.flags) == set(FLAGS)
    assert isinstance(SPEC, SegmentSpec)
