"""Same seed and as_of, same cohort; the stream does not depend on n or the batch size."""

from __future__ import annotations

from datetime import datetime

import pytest

import nudge_engine.cohort as cohort_api
from nudge_engine.cohort import generate_batches, generate_cohort
from tests.unit.cohort.cohort_queries import AS_OF


def test_same_seed_gives_identical_cohort() -> None:
    first = list(generate_cohort(1_500, seed=11, as_of=AS_OF))
    second = list(generate_cohort(1_500, seed=11, as_of=AS_OF))
    assert first == second


def test_different_seeds_give_different_cohorts() -> None:
    one = list(generate_cohort(200, seed=1, as_of=AS_OF))
    two = list(generate_cohort(200, seed=2, as_of=AS_OF))
    assert {p.patient_id for p in one}.isdisjoint({p.patient_id for p in two})
    assert [p.record.context for p in one] != [p.record.context for p in two]


def test_a_smaller_cohort_is_a_prefix_of_a_larger_one() -> None:
    small = list(generate_cohort(1_234, seed=5, as_of=AS_OF))
    large = list(generate_cohort(2_100, seed=5, as_of=AS_OF))
    assert large[: len(small)] == small


def test_batches_hold_the_same_patients_as_the_stream() -> None:
    batches = list(generate_batches(2_500, seed=3, as_of=AS_OF, batch_size=700))
    assert [len(b) for b in batches] == [700, 700, 700, 400]
    assert [p for b in batches for p in b] == list(generate_cohort(2_500, seed=3, as_of=AS_OF))


def test_patient_ids_are_unique(cohort: list[cohort_api.SyntheticPatient]) -> None:
    assert len({p.patient_id for p in cohort}) == len(cohort)


def test_zero_patients_yield_nothing() -> None:
    assert list(generate_cohort(0, as_of=AS_OF)) == []


def test_a_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        next(generate_cohort(1, as_of=datetime(2025, 6, 1, 8)))


def test_a_negative_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        next(generate_cohort(1, seed=-1, as_of=AS_OF))


def test_public_api_is_pinned() -> None:
    assert set(cohort_api.__all__) == {
        "NUDGE_CATEGORIES", "PERSONAS", "TRAIT_KEYS", "EventType", "Programme", "SyntheticEvent",
        "SyntheticPatient", "generate_batches", "generate_cohort",
    }
