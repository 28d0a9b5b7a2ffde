"""A realistic 10,000-record trail, and the raw-SQL tampering an attacker with database access can do."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from nudge_engine.audit.canonical import record_bytes, timestamp
from nudge_engine.audit.checkpoints import sign_checkpoint, write_checkpoint_file
from nudge_engine.audit.postgres import disable_append_only
from nudge_engine.audit.trail import AuditEvent, AuditTrail, EventType

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
RULES = ["EX-03", "EX-07", "HY-01", "FA-02", "ALC-03", "MED-11", "HT-04"]
NUDGES = ["walk-10", "stretch-5", "water-500", "sleep-wind-down", "no-alcohol-week", "sauna-15"]


def new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def random_event(rng: random.Random, patients: list[str]) -> AuditEvent:
    kind = rng.choice([EventType.BUILT, EventType.BLOCKED, EventType.QUEUED, EventType.SERVED, EventType.APPROVED])
    fired = tuple(rng.sample(RULES, rng.randint(0, 2)))
    return AuditEvent(
        event_type=kind,
        actor_role="clinician" if kind is EventType.APPROVED else "system",
        actor_id=f"{rng.getrandbits(128):032x}" if kind is EventType.APPROVED else None,
        patient_ref=rng.choice(patients),
        nudge_id=rng.choice(NUDGES),
        decision={"built": "deliver", "blocked": "block", "queued": "review"}.get(kind.value),
        rule_ids=fired,
        ruleset_digest="sha256:" + "5e" * 32,
        details={
            "cycle_id": f"{rng.getrandbits(64):016x}",
            "candidates": rng.randint(1, 9),
            "age": rng.randint(18, 99),
        },
    )


def build_trail(engine: Engine, trail: AuditTrail, *, records: int, seed: int) -> list[int]:
    """Append ``records`` events in build-sized batches, signing a checkpoint every ~2,500 and at the end."""
    rng = random.Random(seed)
    patients = [f"{rng.getrandbits(128):032x}" for _ in range(400)]
    checkpoints: list[int] = []
    written, now, next_checkpoint = 0, START, 2500
    with Session(engine) as session:
        while written < records:
            size = min(records - written, rng.choice([1, 3, 40, 250, 700]))
            trail.append(session, [random_event(rng, patients) for _ in range(size)], now=now)
            session.commit()
            written += size
            now += timedelta(seconds=rng.randint(1, 90), microseconds=rng.randint(0, 999_999))
            if written >= next_checkpoint or written == records:
                cp = trail.checkpoint(session, now=now)
                session.commit()
                assert cp is not None
                checkpoints.append(cp.head_seq)
                next_checkpoint += 2500
    return checkpoints


class Attacker:
    """Raw SQL on the audit tables, inside one transaction that the test rolls back afterwards."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        if self.postgres:
            disable_append_only(session.connection())

    def count(self) -> int:
        return int(self.s.execute(text("SELECT max(seq) FROM audit_records")).scalar_one())

    COLUMNS = (
        "seq, recorded_at, event_type, actor_role, actor_id, patient_ref, nudge_id, decision, "
        "CAST(rule_ids AS TEXT) AS rule_ids, ruleset_digest, CAST(details AS TEXT) AS details, prev_hash, hash"
    )

    def row(self, seq: int) -> dict[str, Any]:
        sql = f"SELECT {self.COLUMNS} FROM audit_records WHERE seq = :k"
        return dict(self.s.execute(text(sql), {"k": seq}).mappings().one())

    def _json(self, param: str) -> str:
        return f"CAST(:{param} AS json)" if self.postgres else f":{param}"

    def set_column(self, seq: int, column: str, value: Any) -> None:
        target = self._json("v") if column in ("details", "rule_ids") else ":v"
        self.s.execute(text(f"UPDATE audit_records SET {column} = {target} WHERE seq = :k"), {"v": value, "k": seq})

    def shift_time(self, seq: int) -> None:
        if self.postgres:
            sql = "UPDATE audit_records SET recorded_at = recorded_at + interval '1 second' WHERE seq = :k"
        else:
            sql = (
                "UPDATE audit_records SET recorded_at = datetime(recorded_at, '+1 second') || '.000000' WHERE seq = :k"
            )
        self.s.execute(text(sql), {"k": seq})

    def delete(self, where: str, **params: Any) -> None:
        self.s.execute(text(f"DELETE FROM audit_records WHERE {where}"), params)

    def insert(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        values = ", ".join(self._json(c) if c in ("details", "rule_ids") else f":{c}" for c in row)
        self.s.execute(text(f"INSERT INTO audit_records ({cols}) VALUES ({values})"), row)

    def renumber_after(self, seq: int, by: int) -> None:
        self.s.execute(text("UPDATE audit_records SET seq = seq + 1000000 WHERE seq > :k"), {"k": seq})
        self.s.execute(text("UPDATE audit_records SET seq = seq - 1000000 + :by WHERE seq > 1000000"), {"by": by})

    def swap(self, i: int, j: int) -> None:
        a, b = self.row(i), self.row(j)
        for seq, other in ((i, b), (j, a)):
            for column, value in other.items():
                if column not in ("seq", "recorded_at"):
                    self.set_column(seq, column, value)

    def set_head(self, seq: int, digest: str) -> None:
        self.s.execute(text("UPDATE audit_chain_head SET seq = :k, hash = :h WHERE id = 1"), {"k": seq, "h": digest})

    def rehash_from(self, start: int) -> str:
        """Recompute every hash from ``start`` to the end with the engine's own algorithm."""
        prev = self.row(start - 1)["hash"] if start > 1 else "0" * 64
        end = self.count()
        updates: list[dict[str, Any]] = []
        sql = f"SELECT {self.COLUMNS} FROM audit_records WHERE seq >= :k ORDER BY seq"
        for row in self.s.execute(text(sql), {"k": start}).mappings().all():
            seq = row["seq"]
            at = row["recorded_at"]
            recorded = timestamp(at if isinstance(at, datetime) else datetime.fromisoformat(at).replace(tzinfo=UTC))
            digest = hashlib.sha256(
                record_bytes(
                    seq=seq, recorded_at=recorded, event_type=row["event_type"], actor_role=row["actor_role"],
                    actor_id=row["actor_id"], patient_ref=row["patient_ref"], nudge_id=row["nudge_id"],
                    decision=row["decision"], rule_ids_json=row["rule_ids"], ruleset_digest=row["ruleset_digest"],
                    details_json=row["details"], prev_hash=prev,
                )
            ).hexdigest()  # fmt: skip
            updates.append({"k": seq, "p": prev, "h": digest})
            prev = digest
        self.s.execute(text("UPDATE audit_records SET prev_hash = :p, hash = :h WHERE seq = :k"), updates)
        self.set_head(end, prev)
        return prev

    def forge_checkpoint_row(self, *, head_seq: int, head_hash: str, key: bytes, break_signature: bool) -> None:
        cp = sign_checkpoint(
            Ed25519PrivateKey.from_private_bytes(key), head_seq=head_seq, head_hash=head_hash,
            record_count=head_seq, created_at=START + timedelta(days=3),
        )  # fmt: skip
        signature, cp_time = cp.signature, START + timedelta(days=3)
        if break_signature:
            flipped = bytearray(bytes.fromhex(signature))
            flipped[7] ^= 0x01
            signature = flipped.hex()
        self.s.execute(
            text(
                "INSERT INTO audit_checkpoints (created_at, head_seq, head_hash, record_count, public_key, signature) "
                "VALUES (:t, :k, :h, :n, :p, :sig)"
            ),
            {"t": cp_time, "k": head_seq, "h": head_hash, "n": head_seq, "p": cp.public_key, "sig": signature},
        )


def forge_checkpoint_file(directory: Path, *, head_seq: int, head_hash: str, key: bytes) -> Path:
    cp = sign_checkpoint(
        Ed25519PrivateKey.from_private_bytes(key), head_seq=head_seq, head_hash=head_hash,
        record_count=head_seq, created_at=START + timedelta(days=4),
    )  # fmt: skip
    path = write_checkpoint_file(directory, cp)
    return path


def edited_value(rng: random.Random, column: str, row: dict[str, Any]) -> Any:
    """A plausible but different value for ``column``."""
    if column == "details":
        details = json.loads(row["details"])
        details["candidates"] = int(details.get("candidates", 0)) + rng.randint(1, 5)
        return json.dumps(details, sort_keys=True, separators=(",", ":"))
    if column == "rule_ids":
        rules = json.loads(row["rule_ids"])
        return json.dumps(rules[:-1] if rules else ["EX-03"], separators=(",", ":"))
    replacements = {
        "event_type": "approved" if row["event_type"] != "approved" else "rejected",
        "actor_role": "admin",
        "actor_id": f"{rng.getrandbits(128):032x}",
        "patient_ref": f"{rng.getrandbits(128):032x}",
        "nudge_id": "walk-10" if row["nudge_id"] != "walk-10" else "sauna-15",
        "decision": "deliver" if row["decision"] != "deliver" else "block",
        "ruleset_digest": "sha256:" + "00" * 32,
        "hash": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
        "prev_hash": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
    }
    return replacements[column]


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()
