"""Canonical bytes of audit records and checkpoints, and the chain hash.

A record's hash is ``sha256(canonical(payload))`` where the payload holds every field of the
record *and* ``prev_hash``, so each record commits to the whole trail before it. ``canonical`` is
RFC 8785 (JSON Canonicalization Scheme). The ``rfc8785`` package is the reference, but it is pure
Python (about 20 µs a record); for the value domain :class:`~nudge_engine.audit.model.AuditEvent`
admits (ASCII snake_case keys, code-like ASCII strings, integers within ±2^53, no floats) the
standard library's ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
produces the very same bytes four times faster, and :func:`record_bytes` splices a record's
fields in RFC 8785 key order faster still (it is the verification hot loop: 1,000,000 records in
well under 10 s). ``tests/unit/audit/test_canonical_form.py`` checks both against ``rfc8785`` on
generated records. Anything outside that domain is refused by validation before it is hashed.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64

_string = json.encoder.encode_basestring  # the C escaper json.dumps uses with ensure_ascii=False
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode


def canonical(document: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of ``document`` (for the validated audit value domain)."""
    return _encode(document).encode("utf-8")


def timestamp(moment: datetime) -> str:
    """The one text form of a record time: UTC, microseconds, ``+00:00``."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def json_text(value: Any) -> str:
    """Canonical JSON text of a ``details`` mapping or ``rule_ids`` list (as stored in the table)."""
    return _encode(value)


def _text(value: str | None) -> str:
    return "null" if value is None else _string(value)


def record_bytes(
    *,
    seq: int,
    recorded_at: str,
    event_type: str,
    actor_role: str,
    actor_id: str | None,
    patient_ref: str | None,
    nudge_id: str | None,
    decision: str | None,
    rule_ids_json: str,
    ruleset_digest: str | None,
    details_json: str,
    prev_hash: str,
) -> bytes:
    """The canonical bytes of one record, keys in RFC 8785 order, spliced without a dict.

    ``rule_ids_json`` and ``details_json`` are the canonical texts stored in the table (see
    :func:`json_text`), so verification hashes them as stored, without parsing them.
    """
    q = _string  # fields that are never null; the nullable ones go through _text
    return (
        f'{{"actor_id":{_text(actor_id)},"actor_role":{q(actor_role)},"decision":{_text(decision)},'
        f'"details":{details_json},"event_type":{q(event_type)},"nudge_id":{_text(nudge_id)},'
        f'"patient_ref":{_text(patient_ref)},"prev_hash":{q(prev_hash)},'
        f'"recorded_at":{q(recorded_at)},"rule_ids":{rule_ids_json},'
        f'"ruleset_digest":{_text(ruleset_digest)},"seq":{int(seq)},"v":{FORMAT_VERSION}}}'
    ).encode()


_PREV_KEY = b'"prev_hash":"'
_SEQ_KEY = b',"seq":'


def record_splice(
    *,
    recorded_at: str,
    event_type: str,
    actor_role: str,
    actor_id: str | None,
    patient_ref: str | None,
    nudge_id: str | None,
    decision: str | None,
    rule_ids_json: str,
    ruleset_digest: str | None,
    details_json: str,
) -> tuple[bytes, bytes, bytes]:
    """:func:`record_bytes` cut around the two values only the chain head knows: ``(head, mid, tail)``
    such that ``record_bytes(seq=s, prev_hash=p, ...) == head + p + mid + str(s) + tail``.

    For a database that hashes the record while it moves the head on (PostgreSQL, one statement). The
    cut is found in :func:`record_bytes`'s own output, at the *last* ``"prev_hash":"`` and ``,"seq":``:
    those keys come after ``details`` (whose keys may repeat them), and inside a string value their
    quotes would be escaped.
    """
    whole = record_bytes(
        seq=0, recorded_at=recorded_at, event_type=event_type, actor_role=actor_role, actor_id=actor_id,
        patient_ref=patient_ref, nudge_id=nudge_id, decision=decision, rule_ids_json=rule_ids_json,
        ruleset_digest=ruleset_digest, details_json=details_json, prev_hash="",
    )
    prev_at = whole.rindex(_PREV_KEY) + len(_PREV_KEY)
    seq_at = whole.rindex(_SEQ_KEY) + len(_SEQ_KEY)
    return whole[:prev_at], whole[prev_at:seq_at], whole[seq_at + 1:]  # + 1: the "0" of seq=0


def record_payload(
    *,
    seq: int,
    recorded_at: str,
    event_type: str,
    actor_role: str,
    actor_id: str | None,
    patient_ref: str | None,
    nudge_id: str | None,
    decision: str | None,
    rule_ids: Sequence[str],
    ruleset_digest: str | None,
    details: Mapping[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    """The record as a JSON object: what :func:`record_bytes` serialises (used to cross-check it)."""
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "recorded_at": recorded_at,
        "event_type": event_type,
        "actor_role": actor_role,
        "actor_id": actor_id,
        "patient_ref": patient_ref,
        "nudge_id": nudge_id,
        "decision": decision,
        "rule_ids": list(rule_ids),
        "ruleset_digest": ruleset_digest,
        "details": dict(details),
        "prev_hash": prev_hash,
    }


def record_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def checkpoint_statement(*, head_seq: int, head_hash: str, record_count: int, created_at: str) -> bytes:
    """The exact bytes an audit checkpoint signs."""
    return canonical(
        {
            "v": FORMAT_VERSION,
            "kind": "nudge-engine/audit-checkpoint",
            "head_seq": head_seq,
            "head_hash": head_hash,
            "record_count": record_count,
            "created_at": created_at,
        }
    )
