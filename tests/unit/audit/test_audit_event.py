from __future__ import annotations

from typing import Any

import pytest

from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
from nudge_engine.domain.errors import InvalidInput

PATIENT = "5f1c2a9e8b7d4c3f9a0b1c2d3e4f5a6b"


def _event(**overrides: Any) -> AuditEvent:
    values: dict[str, Any] = {"event_type": EventType.BUILT, "actor_role": ActorRole.SYSTEM, "patient_ref": PATIENT}
    values.update(overrides)
    return AuditEvent(**values)


def test_an_event_keeps_codes_ids_and_counts_in_details() -> None:
    event = _event(details={"cycle_id": "c0ffee", "blocked": 3, "escalation": None, "codes": ["I10", "E11.9"]})
    assert dict(event.details) == {"cycle_id": "c0ffee", "blocked": 3, "escalation": None, "codes": ["I10", "E11.9"]}


@pytest.mark.parametrize("age", [90, 91, 104])
def test_ages_above_89_are_recorded_as_90_plus(age: int) -> None:
    assert _event(details={"age": age}).details["age"] == "90+"
    assert _event(details={"patient_age": age}).details["patient_age"] == "90+"


def test_an_age_of_89_is_recorded_exactly() -> None:
    assert _event(details={"age": 89}).details["age"] == 89


@pytest.mark.parametrize(
    "key",
    ["name", "family_name", "address", "phone", "email", "birth_date", "dob", "ssn", "mrn", "patient_id",
     "source_id", "comment", "free_text", "insurance_number", "url", "ip"],
)  # fmt: skip
def test_details_refuse_keys_that_would_hold_an_identifier(key: str) -> None:
    with pytest.raises(InvalidInput, match=key):
        _event(details={key: "x"})


@pytest.mark.parametrize(
    "value",
    ["Jane Doe", "walked to the park today", "jane@example.org", "x" * 129, 1.5, b"bytes", {1, 2}],
)
def test_details_refuse_free_text_and_non_code_values(value: object) -> None:
    with pytest.raises(InvalidInput, match="reason_code"):
        _event(details={"reason_code": value})


def test_details_refuse_identifier_keys_inside_nested_mappings() -> None:
    with pytest.raises(InvalidInput, match=r"counts\.given"):
        _event(details={"counts": {"given": 1}})


def test_details_refuse_nesting_deeper_than_one_level() -> None:
    with pytest.raises(InvalidInput, match="too deep"):
        _event(details={"a": {"b": {"c": 1}}})


def test_patient_ref_must_be_a_surrogate_id_not_a_source_identifier() -> None:
    with pytest.raises(InvalidInput, match="patient_ref"):
        _event(patient_ref="b0a0e2ad-1a7c-4e0e-9f6d-7e1d8f6b2a11")  # a Synthea-style UUID
    with pytest.raises(InvalidInput, match="patient_ref"):
        _event(patient_ref="MRN-0042")


def test_unknown_event_types_and_roles_are_refused() -> None:
    with pytest.raises(InvalidInput, match="event_type"):
        _event(event_type="hacked")
    with pytest.raises(InvalidInput, match="actor_role"):
        _event(actor_role="patient")


def test_details_are_read_only_after_validation() -> None:
    event = _event(details={"count": 1})
    with pytest.raises(TypeError):
        event.details["count"] = 2  # type: ignore[index]


@pytest.mark.parametrize("key", ["event_type", "seq", "prev_hash", "decision", "nudge_id"])
def test_details_may_not_reuse_a_record_field_name_at_any_depth(key: str) -> None:
    with pytest.raises(InvalidInput, match="record field"):
        _event(details={key: "x"})
    with pytest.raises(InvalidInput, match="record field"):
        _event(details={"counts": {key: 1}})
