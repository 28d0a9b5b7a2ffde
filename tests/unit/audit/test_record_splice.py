"""The canonical bytes cut around prev_hash and seq put back together are the record's bytes (and hash)."""

from __future__ import annotations

import hashlib

import pytest

from nudge_engine.audit.canonical import json_text, record_bytes, record_splice
from nudge_engine.audit.trail import spliced_hash

FIELDS = [
    {"recorded_at": "2026-03-01T08:00:00.000000+00:00", "event_type": "served", "actor_role": "service",
     "actor_id": "tok-1", "patient_ref": "p" * 32, "nudge_id": "walk-10", "decision": "deliver",
     "rule_ids_json": json_text([]), "ruleset_digest": "sha256:abc",
     "details_json": json_text({"delivery_id": "d1", "rechecked": False})},
    # details whose keys repeat the cut keys, and nulls everywhere they are allowed
    {"recorded_at": "2026-03-01T08:00:00.000000+00:00", "event_type": "request_denied", "actor_role": "service",
     "actor_id": None, "patient_ref": None, "nudge_id": None, "decision": None,
     "rule_ids_json": json_text(["BP-1", "CKD-2"]), "ruleset_digest": None,
     "details_json": json_text({"prev_hash": "x", "seq": 7, "note": '"prev_hash":"'})},
]


@pytest.mark.parametrize("fields", FIELDS)
@pytest.mark.parametrize(("seq", "prev"), [(1, "0" * 64), (9_007_199_254_740_991, hashlib.sha256(b"x").hexdigest())])
def test_the_spliced_parts_around_prev_hash_and_seq_rebuild_the_record_bytes(
    fields: dict[str, str | None], seq: int, prev: str
) -> None:
    head, mid, tail = record_splice(**fields)  # type: ignore[arg-type]
    assert head + prev.encode() + mid + str(seq).encode() + tail == record_bytes(seq=seq, prev_hash=prev, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields", FIELDS)
def test_the_hash_sqlite_computes_from_the_parts_is_the_record_hash(fields: dict[str, str | None]) -> None:
    prev = hashlib.sha256(b"previous").hexdigest()
    head, mid, tail = record_splice(**fields)  # type: ignore[arg-type]
    expected = hashlib.sha256(record_bytes(seq=42, prev_hash=prev, **fields)).hexdigest()  # type: ignore[arg-type]
    assert spliced_hash(head, prev, mid, 42, tail) == expected
