"""Shared synthetic cohorts: generated once per test session (a 20,000-patient cohort takes seconds)."""

from __future__ import annotations

import pytest

from nudge_engine.cohort import SyntheticPatient, generate_cohort
from tests.unit.cohort.cohort_queries import AS_OF


@pytest.fixture(scope="session")
def cohort() -> list[SyntheticPatient]:
    return list(generate_cohort(20_000, seed=7, as_of=AS_OF))


@pytest.fixture(scope="session")
def adults(cohort: list[SyntheticPatient]) -> list[SyntheticPatient]:
    return [p for p in cohort if (p.record.context.age_at(AS_OF) or 0) >= 18]
