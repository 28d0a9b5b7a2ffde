"""Audit trail speed: appending as the build does, and verifying a 1,000,000-record trail.

    .venv/bin/python benchmarks/bench_audit.py [--records 1000000] [--batch 5000] [--database-url URL]

Each figure is reported against hashing the same canonical bytes without the chain, in the same run:

- append: events appended in build-sized transactions (one chain-head lock per transaction), in
  records/s, against computing the same canonical bytes and SHA-256 with no chain and no database;
- verify: the whole-trail check (chain, head, checkpoints), against streaming the same rows and
  hashing the same bytes with no chain check, and against hashing the bytes alone in memory.

Target (issue 7): verify 1,000,000 records in under 10 s.
Default database: a fresh SQLite file in a temporary directory, migrated with Alembic.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Table, Text, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import upgrade
from nudge_engine.adapters.orm.audit import AuditRecordRow
from nudge_engine.audit.canonical import GENESIS_HASH, json_text, record_bytes, timestamp
from nudge_engine.audit.trail import AuditEvent, AuditTrail, EventType
from nudge_engine.audit.verify import _time_reader

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
RULES = ["EX-03", "EX-07", "HY-01", "FA-02", "ALC-03", "MED-11", "HT-04"]


def build_events(n: int, rng: random.Random) -> list[AuditEvent]:
    """One build cycle's worth of decisions: mostly built, some blocked and queued."""
    patients = [f"{rng.getrandbits(128):032x}" for _ in range(max(1, n // 3))]
    cycle = f"{rng.getrandbits(128):032x}"
    events = []
    for i in range(n):
        kind = rng.choices([EventType.BUILT, EventType.BLOCKED, EventType.QUEUED], [0.7, 0.2, 0.1])[0]
        events.append(
            AuditEvent(
                event_type=kind,
                actor_role="system",
                patient_ref=patients[i % len(patients)],
                nudge_id=rng.choice(["walk-10", "water-500", "sleep-wind-down", "sauna-15"]),
                decision={"built": "deliver", "blocked": "block", "queued": "review"}[kind.value],
                rule_ids=tuple(rng.sample(RULES, rng.randint(0, 2))),
                ruleset_digest="sha256:" + "5e" * 32,
                details={"cycle_id": cycle, "candidates": rng.randint(1, 9), "age": rng.randint(18, 99)},
            )
        )
    return events


def unchained_bytes(events: list[AuditEvent], first_seq: int, at: str) -> list[bytes]:
    return [
        record_bytes(
            seq=first_seq + i, recorded_at=at, event_type=e.event_type, actor_role=e.actor_role,
            actor_id=e.actor_id, patient_ref=e.patient_ref, nudge_id=e.nudge_id, decision=e.decision,
            rule_ids_json=json_text(list(e.rule_ids)), ruleset_digest=e.ruleset_digest,
            details_json=json_text(dict(e.details)), prev_hash=GENESIS_HASH,
        )
        for i, e in enumerate(events)
    ]  # fmt: skip


def stream_and_hash(session: Session) -> tuple[int, float]:
    """The same query and bytes as verification, hashed with no chain or checkpoint check."""
    c = cast(Table, AuditRecordRow.__table__).c
    time_column, time_text = _time_reader(session)
    query = select(
        c.seq, time_column, c.event_type, c.actor_role, c.actor_id, c.patient_ref, c.nudge_id, c.decision,
        sql_cast(c.rule_ids, Text), c.ruleset_digest, sql_cast(c.details, Text), c.prev_hash,
    ).order_by(c.seq)  # fmt: skip
    started, n = time.perf_counter(), 0
    with session.connection().execute(query.execution_options(yield_per=20_000)) as rows:
        for seq, at, etype, role, actor, patient, nudge, decision, rules, digest, details, prev in rows:
            hashlib.sha256(
                record_bytes(
                    seq=seq, recorded_at=time_text(at), event_type=etype, actor_role=role, actor_id=actor,
                    patient_ref=patient, nudge_id=nudge, decision=decision, rule_ids_json=rules,
                    ruleset_digest=digest, details_json=details, prev_hash=prev,
                )
            ).hexdigest()  # fmt: skip
            n += 1
    return n, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per transaction (a build shard)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'audit.db'}"
        engine = make_engine(url)
        upgrade(engine)
        key = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        trail = AuditTrail(signing_key=key, checkpoint_dir=Path(tmp) / "checkpoints")
        cycle = build_events(args.batch, rng)  # one build shard's decisions, appended again and again
        at = timestamp(START)

        # Baseline: the same canonical bytes hashed, no chain, no database.
        started = time.perf_counter()
        for _ in range(args.records // args.batch):
            for content in unchained_bytes(cycle, 1, at):
                hashlib.sha256(content).hexdigest()
        hash_only = time.perf_counter() - started

        appended, started, now = 0, time.perf_counter(), START
        with Session(engine) as session:
            while appended < args.records:
                size = min(args.batch, args.records - appended)
                trail.append(session, cycle[:size], now=now)
                session.commit()
                appended += size
                now += timedelta(milliseconds=250)
        append_time = time.perf_counter() - started
        with Session(engine) as session:
            trail.checkpoint(session, now=now)
            session.commit()

        with Session(engine) as session:
            started = time.perf_counter()
            result = trail.verify(session)
            verify_time = time.perf_counter() - started
        with Session(engine) as session:
            streamed, stream_time = stream_and_hash(session)
        sample = unchained_bytes(cycle, 1, at)
        started = time.perf_counter()
        for _ in range(args.records // len(sample)):
            for content in sample:
                hashlib.sha256(content).hexdigest()
        memory_time = time.perf_counter() - started
        engine.dispose()

    n = args.records
    print(f"audit benchmark on {engine.dialect.name}: {n:,} records, {args.batch:,} per transaction")
    print(
        f"append (chained, bulk, one lock per transaction): {n / append_time:>12,.0f} records/s  ({append_time:.1f} s)"
    )
    print(f"  canonical bytes + SHA-256, no chain, no database: {n / hash_only:>10,.0f} records/s  ({hash_only:.1f} s)")
    print(f"  ratio append / hash-only time: {append_time / hash_only:.1f}x")
    print(f"verify (chain + head + checkpoints): {verify_time:.2f} s for {result.records_checked:,} records "
          f"({'ok' if result.ok else 'FAILED: ' + str(result.reason)}); target < 10 s")  # fmt: skip
    print(f"  same rows streamed and hashed, no chain check: {stream_time:.2f} s for {streamed:,} records")
    print(f"  same bytes hashed in memory only: {memory_time:.2f} s")
    print(f"  ratio verify / stream-and-hash: {verify_time / stream_time:.2f}x; "
          f"verify / in-memory hash: {verify_time / memory_time:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
