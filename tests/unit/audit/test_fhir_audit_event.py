from __future__ import annotations

from typing import Any

from nudge_engine.audit.export import EXPORT_FIELDS, fhir_audit_event

RECORD: dict[str, Any] = {
    "seq": 12,
    "recorded_at": "2026-03-01T09:30:00.000000+00:00",
    "event_type": "erased",
    "actor_role": "admin",
    "actor_id": "9f" * 16,
    "patient_ref": "ab" * 16,
    "nudge_id": None,
    "decision": None,
    "rule_ids": [],
    "ruleset_digest": None,
    "details": {"conditions_removed": 3},
    "prev_hash": "1" * 64,
    "hash": "2" * 64,
}


def test_a_record_becomes_a_balp_shaped_fhir_audit_event() -> None:
    event = fhir_audit_event(RECORD)
    assert event["resourceType"] == "AuditEvent"
    assert event["type"]["code"] == "110100"
    assert event["subtype"][0]["code"] == "erased"
    assert (event["action"], event["outcome"], event["recorded"]) == ("D", "0", RECORD["recorded_at"])
    assert event["agent"][0]["who"] == {"reference": f"Practitioner/{'9f' * 16}"}
    patient, nudge = event["entity"]
    assert patient["what"] == {"reference": f"Patient/{'ab' * 16}"}
    assert patient["role"]["code"] == "1"  # BALP: the patient entity
    assert nudge["lifecycle"]["code"] == "destroy"
    assert {d["type"] for d in nudge["detail"]} == {"details", "prev_hash", "hash"}


def test_denied_requests_are_exported_as_failures() -> None:
    assert fhir_audit_event({**RECORD, "event_type": "request_denied"})["outcome"] == "4"


def test_exports_carry_exactly_the_contract_fields() -> None:
    assert set(EXPORT_FIELDS) == set(RECORD)
