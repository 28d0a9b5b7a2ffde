"""De-identified views of the trail for auditors: queries, and JSONL / CSV / FHIR AuditEvent exports.

Every export carries exactly :data:`EXPORT_FIELDS`: surrogate ids, codes, counts and the chain
hashes (so an auditor can re-verify an export offline), never an identifier. The FHIR form follows
the IHE Basic Audit Log Patterns (BALP): the patient appears only as a BALP ``patient`` entity
referenced by its random surrogate id (``Patient/<surrogate>``), the actor as an agent referenced
by a pseudonymous id. No ``identifier`` element is ever emitted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import IO, Any, cast

from sqlalchemy import Table, Text, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm.audit import AuditRecordRow
from nudge_engine.audit.canonical import timestamp

EXPORT_FIELDS = (
    "seq", "recorded_at", "event_type", "actor_role", "actor_id", "patient_ref", "nudge_id",
    "decision", "rule_ids", "ruleset_digest", "details", "prev_hash", "hash",
)  # fmt: skip
NS = "https://nudge-engine.dev/fhir"
_records = cast(Table, AuditRecordRow.__table__)


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    FHIR = "fhir"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Auditor filters; all optional. ``after_seq`` pages forward."""

    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    rule_id: str | None = None
    decision: str | None = None
    patient_ref: str | None = None
    after_seq: int = 0


def iter_records(session: Session, filters: EventFilter, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Records matching ``filters`` in ``seq`` order, as plain dicts of :data:`EXPORT_FIELDS`."""
    c = _records.c
    query = select(*(c[name] for name in EXPORT_FIELDS)).where(c.seq > filters.after_seq)
    if filters.since is not None:
        query = query.where(c.recorded_at >= filters.since)
    if filters.until is not None:
        query = query.where(c.recorded_at < filters.until)
    if filters.event_type is not None:
        query = query.where(c.event_type == filters.event_type)
    if filters.decision is not None:
        query = query.where(c.decision == filters.decision)
    if filters.patient_ref is not None:
        query = query.where(c.patient_ref == filters.patient_ref)
    if filters.rule_id is not None:  # rule_ids is stored as canonical JSON text: match the quoted id
        query = query.where(sql_cast(c.rule_ids, Text).contains(json.dumps(filters.rule_id)))
    query = query.order_by(c.seq)
    if limit is not None:
        query = query.limit(limit)
    with session.connection().execute(query.execution_options(yield_per=5000)) as rows:
        for row in rows.mappings():
            record = dict(row)
            record["recorded_at"] = timestamp(record["recorded_at"])
            yield record


def write_jsonl(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        row = dict(record)
        row["rule_ids"] = ";".join(record["rule_ids"])
        row["details"] = json.dumps(record["details"], sort_keys=True, separators=(",", ":"))
        writer.writerow(row)
        count += 1
    return count


# BALP / FHIR R4 codes for each event type: (action C/R/U/D/E, ISO 21089 lifecycle code).
_ACTIONS: dict[str, tuple[str, str]] = {
    "built": ("C", "originate"), "blocked": ("E", "verify"), "queued": ("C", "originate"),
    "superseded": ("U", "deprecate"), "approved": ("U", "attest"), "rejected": ("U", "attest"),
    "expired": ("U", "deprecate"), "escalated": ("U", "amend"),
    "identifiers_viewed": ("R", "access"), "served": ("R", "transmit"),
    "delivered": ("R", "transmit"), "opened": ("R", "access"), "dismissed": ("U", "amend"),
    "completed": ("U", "amend"), "activity": ("C", "receive"), "imported": ("C", "receive"),
    "enrolled": ("C", "receive"), "context_replaced": ("U", "receive"), "erased": ("D", "destroy"),
    "preferences_changed": ("U", "amend"), "token_created": ("C", "originate"),
    "token_revoked": ("D", "deactivate"), "key_rotated": ("U", "transform"),
    "request_denied": ("E", "access"), "login_failed": ("E", "access"),
    "ruleset_loaded": ("E", "access"), "exported": ("R", "disclose"), "checkpointed": ("E", "verify"),
}  # fmt: skip
_FAILURES = {"request_denied", "login_failed"}


def fhir_audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a FHIR R4 AuditEvent (IHE BALP shape), with no identifier of the patient."""
    action, lifecycle = _ACTIONS.get(record["event_type"], ("E", "access"))
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": f"{NS}/CodeSystem/actor-role", "code": record["actor_role"]}]},
        "requestor": record["actor_role"] != "system",
    }
    if record["actor_id"]:
        kind = "Practitioner" if record["actor_role"] in ("clinician", "auditor", "admin") else "Device"
        agent["who"] = {"reference": f"{kind}/{record['actor_id']}"}
    details = [
        {"type": name, "valueString": value if isinstance(value, str) else json.dumps(value, sort_keys=True)}
        for name, value in (
            ("decision", record["decision"]),
            ("rule_ids", ",".join(record["rule_ids"]) or None),
            ("ruleset_digest", record["ruleset_digest"]),
            ("details", record["details"] or None),
            ("prev_hash", record["prev_hash"]),
            ("hash", record["hash"]),
        )
        if value is not None
    ]
    entities: list[dict[str, Any]] = []
    if record["patient_ref"]:
        entities.append(
            {
                "what": {"reference": f"Patient/{record['patient_ref']}"},  # the random surrogate id
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            }
        )
    entities.append(
        {
            "what": {"reference": f"{NS}/nudge/{record['nudge_id'] or 'none'}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            "lifecycle": {"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "code": lifecycle},
            "detail": details,
        }
    )
    return {
        "resourceType": "AuditEvent",
        "id": f"audit-{record['seq']}",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110100",
                 "display": "Application Activity"},
        "subtype": [{"system": f"{NS}/CodeSystem/audit-event", "code": record["event_type"]}],
        "action": action,
        "recorded": record["recorded_at"],
        "outcome": "4" if record["event_type"] in _FAILURES else "0",
        "agent": [agent],
        "source": {
            "observer": {"display": "nudge-engine"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": entities,
    }  # fmt: skip


def write_fhir(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """A FHIR ``Bundle`` (type collection) of AuditEvents, streamed one entry at a time."""
    out.write('{"resourceType":"Bundle","type":"collection","entry":[')
    count = 0
    for record in records:
        out.write(("," if count else "") + "\n")
        out.write(json.dumps({"resource": fhir_audit_event(record)}, separators=(",", ":")))
        count += 1
    out.write("\n]}\n")
    return count


WRITERS = {ExportFormat.JSONL: write_jsonl, ExportFormat.CSV: write_csv, ExportFormat.FHIR: write_fhir}


def export(session: Session, filters: EventFilter, fmt: ExportFormat, out: IO[str]) -> int:
    """Write the matching records to ``out`` in ``fmt``; returns how many."""
    return WRITERS[fmt](iter_records(session, filters), out)
