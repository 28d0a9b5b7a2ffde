from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import upgrade
from nudge_engine.adapters.orm.audit import AuditChainHeadRow, AuditRecordRow
from nudge_engine.audit.canonical import GENESIS_HASH, canonical, record_payload, timestamp
from nudge_engine.audit.trail import AuditEvent, AuditTrail, EventType
from nudge_engine.domain.errors import ConfigurationError
from tests.integration.audit.conftest import NOW

PATIENT = "0d2c4b6a8e0f4a1b9c3d5e7f9a1b3c5d"


def _built(n: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            event_type=EventType.BUILT,
            actor_role="system",
            patient_ref=PATIENT,
            nudge_id=f"walk-{i}",
            decision="deliver",
            rule_ids=("EX-03",),
            ruleset_digest="sha256:" + "ab" * 32,
            details={"cycle_id": "c1", "age": 93},
        )
        for i in range(n)
    ]


def test_appended_records_get_dense_sequence_numbers_and_link_to_each_other(session: Session) -> None:
    trail = AuditTrail()
    trail.append(session, _built(3), now=NOW)
    trail.append(session, _built(2), now=NOW)
    session.commit()
    rows = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq)).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    head = session.get(AuditChainHeadRow, 1)
    assert head is not None and (head.seq, head.hash) == (5, rows[-1].hash)


def test_each_record_hash_covers_its_canonical_fields_and_the_previous_hash(session: Session) -> None:
    AuditTrail().append(session, _built(1), now=NOW)
    session.commit()
    row = session.scalars(select(AuditRecordRow)).one()
    payload = record_payload(
        seq=1,
        recorded_at=timestamp(NOW),
        event_type="built",
        actor_role="system",
        actor_id=None,
        patient_ref=PATIENT,
        nudge_id="walk-0",
        decision="deliver",
        rule_ids=["EX-03"],
        ruleset_digest="sha256:" + "ab" * 32,
        details={"cycle_id": "c1", "age": "90+"},
        prev_hash=GENESIS_HASH,
    )
    assert row.hash == hashlib.sha256(canonical(payload)).hexdigest()
    assert row.recorded_at == NOW
    assert row.details == {"cycle_id": "c1", "age": "90+"}


def test_a_rolled_back_transaction_leaves_neither_records_nor_a_moved_head(session: Session) -> None:
    trail = AuditTrail()
    trail.append(session, _built(2), now=NOW)
    session.commit()
    trail.append(session, _built(5), now=NOW)
    session.rollback()
    trail.append(session, _built(1), now=NOW)
    session.commit()
    assert session.scalars(select(AuditRecordRow.seq).order_by(AuditRecordRow.seq)).all() == [1, 2, 3]


def test_appending_no_events_writes_nothing(session: Session) -> None:
    AuditTrail().append(session, [], now=NOW)
    session.commit()
    assert session.scalar(select(func.count()).select_from(AuditRecordRow)) == 0
    assert session.get(AuditChainHeadRow, 1) is None


def test_a_single_record_is_chained_and_sealed_by_one_statement_and_a_batch_by_its_seal(session: Session) -> None:
    trail = AuditTrail()
    trail.append(session, _built(1), now=NOW)  # the first append creates the head
    session.commit()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", record)
    trail.append(session, _built(1), now=NOW)
    event.remove(connection, "before_cursor_execute", record)
    trail.append(session, _built(3), now=NOW)  # reserved ahead, inserted, then sealed by the engine
    session.commit()

    if session.get_bind().dialect.name == "sqlite":
        assert len(statements) == 1 and statements[0].lstrip().startswith("INSERT INTO audit_records")
    else:
        assert len(statements) == 1  # reserve, insert and seal in one statement there too
    head = session.get(AuditChainHeadRow, 1)
    last = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)).one()
    assert head is not None and (head.seq, head.hash) == (last.seq, last.hash)
    assert last.seq == 5 and head.updated_at == NOW
    assert trail.verify(session).ok


def test_a_sqlite_database_behind_the_seal_migration_refuses_a_single_append_and_stores_nothing(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    try:
        upgrade(engine, "0007")  # the chain head is not sealed by a trigger before 0008
        with Session(engine) as session:
            with pytest.raises(ConfigurationError, match="db upgrade"):
                AuditTrail().append(session, _built(1), now=NOW)
            session.rollback()
            assert session.scalar(select(func.count()).select_from(AuditRecordRow)) == 0
    finally:
        engine.dispose()
