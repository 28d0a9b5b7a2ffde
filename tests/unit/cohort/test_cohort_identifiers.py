"""Identifiers are obviously fake and never leak into the clinical context."""

from __future__ import annotations

import re

from nudge_engine.cohort import SyntheticPatient
from tests.unit.cohort.cohort_queries import AS_OF

Patients = list[SyntheticPatient]


def test_identifiers_never_appear_in_the_clinical_context(cohort: Patients) -> None:
    for p in cohort[:3000]:
        ids = p.record.identifiers
        context_text = repr(p.record.context) + repr(p.events) + repr(dict(p.traits))
        secrets = [ids.source_id, *ids.names, *ids.telecom, *ids.addresses, *ids.record_numbers]
        secrets += [part for name in ids.names for part in name.split()]
        assert not [s for s in secrets if s in context_text]


def test_names_are_synthea_style_with_digits(cohort: Patients) -> None:
    pattern = re.compile(r"^[A-Z][a-z]+\d{2,3} [A-Z][a-z]+\d{2,3}$")
    assert all(pattern.match(p.record.identifiers.names[0]) for p in cohort)


def test_phone_numbers_and_ssns_are_from_fictional_ranges(cohort: Patients) -> None:
    for p in cohort:
        ids = p.record.identifiers
        assert ids.telecom[0].startswith(("555-", "+44 7700 900"))
        assert any(r.startswith("MRN-SYN-") for r in ids.record_numbers)
        assert any(r.startswith("999-") for r in ids.record_numbers)


def test_birth_date_gives_the_same_age_in_identifiers_and_context(cohort: Patients) -> None:
    assert all(p.record.identifiers.birth_date == p.record.context.birth_date for p in cohort)
    assert any((p.record.context.age_at(AS_OF) or 0) > 89 for p in cohort)
