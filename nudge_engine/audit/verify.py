"""Verification of the audit trail: the hash chain, the chain head and the signed checkpoints.

The walk streams records in ``seq`` order (``yield_per``) and, for each, checks in this order:

1. its ``seq`` is the next one (a gap means a record was deleted or the order changed);
2. its ``prev_hash`` is the previous record's hash (records swapped, inserted or removed);
3. its ``hash`` is the SHA-256 of its canonical fields (a field was edited);
4. where a checkpoint pins this ``seq``, the hash is the signed one (the chain was recomputed).

Then the end: the last ``seq`` must reach every valid checkpoint (else the tail was truncated) and
match the chain-head row. Every checkpoint found, in the database or in the checkpoint directory,
must carry a valid Ed25519 signature by the configured audit key (a forged checkpoint fails).
The result names the first bad record; a clean trail never fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from typing import cast as typing_cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import ColumnElement, String, Table, Text, cast, select, type_coerce
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm.audit import AuditChainHeadRow, AuditRecordRow
from nudge_engine.audit.canonical import GENESIS_HASH, record_bytes, timestamp
from nudge_engine.audit.checkpoints import Checkpoint, load_checkpoints

BATCH = 20_000
_records = typing_cast(Table, AuditRecordRow.__table__)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The integrity of the trail: ``ok``, or the first bad record (``first_bad_seq``) and why."""

    ok: bool
    records_checked: int
    head_seq: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.ok:
            return (
                f"audit chain verified: {self.records_checked} records, head {self.head_seq}, "
                f"{self.checkpoints_checked} signed checkpoints"
            )
        where = f"record {self.first_bad_seq}" if self.first_bad_seq is not None else "checkpoints"
        return f"audit chain BROKEN at {where}: {self.reason}"


def _time_reader(session: Session) -> tuple[ColumnElement[Any], Callable[[Any], str]]:
    """The record-time column and how to turn what the driver returns into the hashed text.

    SQLite hands back the stored text (``2026-03-01 09:30:00.000000``, always with microseconds),
    which is rearranged without parsing; PostgreSQL hands back an aware datetime.
    """
    column = _records.c.recorded_at
    if session.get_bind().dialect.name == "sqlite":

        def from_text(raw: Any) -> str:
            text = str(raw)
            if len(text) == 26 and text[10] == " ":
                return f"{text[:10]}T{text[11:]}+00:00"
            return timestamp(datetime.fromisoformat(text).replace(tzinfo=UTC))

        return type_coerce(column, String), from_text
    return column, timestamp


def _walk(
    session: Session, *, after_seq: int, after_hash: str, end_seq: int | None, pins: dict[int, Checkpoint]
) -> tuple[int, str, int, tuple[int, str] | None]:
    """Check records after ``after_seq``; returns (last seq, last hash, count, first problem)."""
    c = _records.c
    time_column, time_text = _time_reader(session)
    query = select(
        c.seq, time_column, c.event_type, c.actor_role, c.actor_id, c.patient_ref, c.nudge_id,
        c.decision, cast(c.rule_ids, Text), c.ruleset_digest, cast(c.details, Text), c.prev_hash, c.hash,
    ).where(c.seq > after_seq)  # fmt: skip
    if end_seq is not None:
        query = query.where(c.seq <= end_seq)
    with session.connection().execute(query.order_by(c.seq).execution_options(yield_per=BATCH)) as rows:
        return _check_rows(rows, after_seq=after_seq, after_hash=after_hash, pins=pins, time_text=time_text)


def _check_rows(
    rows: Iterable[Any],
    *,
    after_seq: int,
    after_hash: str,
    pins: dict[int, Checkpoint],
    time_text: Callable[[Any], str],
) -> tuple[int, str, int, tuple[int, str] | None]:
    sha256 = hashlib.sha256
    expected, prev, count, last_pin = after_seq + 1, after_hash, 0, after_seq
    for seq, at, etype, role, actor, patient, nudge, decision, rules, digest, details, prev_hash, stored in rows:
        if seq != expected:
            return expected - 1, prev, count, (expected, f"record missing (next stored record is {seq})")
        if prev_hash != prev:
            return seq, prev, count, (seq, "prev_hash does not link to the previous record")
        content = record_bytes(
            seq=seq, recorded_at=time_text(at), event_type=etype, actor_role=role, actor_id=actor,
            patient_ref=patient, nudge_id=nudge, decision=decision, rule_ids_json=rules,
            ruleset_digest=digest, details_json=details, prev_hash=prev_hash,
        )  # fmt: skip
        if sha256(content).hexdigest() != stored:
            return seq, prev, count, (seq, "hash does not match the record's content (record altered)")
        pin = pins.get(seq)
        if pin is not None:
            if pin.head_hash != stored or pin.record_count != seq:
                first = last_pin + 1
                why = f"records {first}..{seq} differ from the signed {pin.source} (chain rewritten)"
                return seq, prev, count, (first, why)
            last_pin = seq
        prev, expected, count = stored, seq + 1, count + 1
    return expected - 1, prev, count, None


def verify_segment(session: Session, *, after_seq: int, after_hash: str | None, end_seq: int) -> tuple[int, str] | None:
    """Check records ``after_seq+1 .. end_seq`` (the latter must exist); None when they are sound."""
    start_hash = after_hash if after_hash is not None else GENESIS_HASH
    last, _, _, problem = _walk(session, after_seq=after_seq, after_hash=start_hash, end_seq=end_seq, pins={})
    if problem is None and last != end_seq:
        return last + 1, f"record missing (trail ends at {last}, head says {end_seq})"
    return problem


def verify_trail(session: Session, *, public_key: Ed25519PublicKey | None, checkpoint_dir: Path | None) -> VerifyResult:
    """Check the whole trail, its head and every checkpoint; name the first bad record."""
    checkpoints, problems = load_checkpoints(session, checkpoint_dir)
    head = session.get(AuditChainHeadRow, 1)
    head_seq = head.seq if head else 0

    def failed(first: int | None, reason: str, checked: int = 0) -> VerifyResult:
        return VerifyResult(False, checked, head_seq, len(checkpoints), first, reason)

    if problems:
        return failed(None, problems[0])
    pins: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if public_key is None:
            return failed(None, "no audit signing key configured: checkpoints cannot be checked")
        if not cp.is_signed_by(public_key):
            return failed(None, f"{cp.source}: signature does not verify with the audit key (forged)")
        other = pins.setdefault(cp.head_seq, cp)
        if other.head_hash != cp.head_hash:
            return failed(cp.head_seq, f"{cp.source} and {other.source} sign different hashes")

    last, last_hash, count, problem = _walk(session, after_seq=0, after_hash=GENESIS_HASH, end_seq=None, pins=pins)
    if problem is not None:
        return failed(problem[0], problem[1], count)
    beyond = [seq for seq in pins if seq > last]
    if beyond:
        return failed(last + 1, f"trail ends at {last} but a signed checkpoint covers {max(beyond)} (truncated)", count)
    if head_seq > last:
        return failed(last + 1, f"trail ends at {last} but the chain head is {head_seq} (records removed)", count)
    if head_seq < last:
        return failed(head_seq + 1, f"records after the chain head {head_seq} were not appended by the engine", count)
    if head is not None and head.hash != last_hash:
        return failed(last, "the chain head's hash differs from the last record's", count)
    return VerifyResult(True, count, head_seq, len(checkpoints))
