"""Canonical bytes of audit records and checkpoints, and the chain hash.

A record's hash is ``sha256(canonical(payload))`` where the payload holds every field of the
record *and* ``prev_hash``, so each record commits to the whole trail before it. ``canonical`` is
RFC 8785 (JSON Canonicalization Scheme). The ``rfc8785`` package is the reference, but it is pure
Python (about 20 µs a record); for the value domain :class:`~nudge_engine.audit.model.AuditEvent`
admits (ASCII snake_case keys, code-like ASCII strings, integers within ±2^53, no floats) the
standard library's ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
produces the very same bytes four times faster; ``tests/unit/audit/test_canonical.py`` checks that
equivalence against ``rfc8785`` on generated records. Anything outside that domain is refused by
validation before it is ever hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64

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
