from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nudge_engine.audit.postgres import DROP_AUDIT_APPEND_ONLY, disable_append_only
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from tests.integration.audit.conftest import NOW
from tests.integration.audit.trail_kit import new_signing_key

KEY = new_signing_key()
EVENT = AuditEvent(event_type="built", actor_role="system", patient_ref="ab" * 16, nudge_id="walk-10")


@pytest.fixture
def guarded(engine: Engine, tmp_path: Path) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on the chain and checkpoints alone")
    trail = AuditTrail(signing_key=KEY, checkpoint_dir=tmp_path)
    with Session(engine) as session:
        trail.append(session, [EVENT, EVENT], now=NOW)
        trail.checkpoint(session, now=NOW)
        session.commit()
    return engine


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET decision = 'block' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 2",
        "TRUNCATE audit_records",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_checkpoints SET head_seq = 1",
    ],
)
def test_the_migrated_postgres_database_rejects_changing_or_removing_audit_rows(
    guarded: Engine, statement: str
) -> None:
    with guarded.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text(statement))


def test_postgres_still_accepts_appends_under_the_guard(guarded: Engine) -> None:
    with Session(guarded) as session:
        AuditTrail().append(session, [EVENT], now=NOW)
        session.commit()
        assert session.execute(text("SELECT max(seq) FROM audit_records")).scalar_one() == 3


def test_tampering_on_postgres_needs_the_trigger_disabled_first(guarded: Engine, tmp_path: Path) -> None:
    with guarded.connect() as conn:
        disable_append_only(conn)  # needs DDL rights on the table
        conn.execute(text("UPDATE audit_records SET decision = 'block' WHERE seq = 1"))
        with Session(bind=conn) as session:
            result = AuditTrail(signing_key=KEY, checkpoint_dir=tmp_path).verify(session)
        conn.rollback()
    assert not result.ok and result.first_bad_seq == 1


def test_the_guard_can_be_removed_by_the_downgrade(guarded: Engine) -> None:
    with guarded.begin() as conn:
        for statement in DROP_AUDIT_APPEND_ONLY:
            conn.execute(text(statement))
        conn.execute(text("DELETE FROM audit_records WHERE seq = 2"))
        assert conn.execute(text("SELECT count(*) FROM audit_records")).scalar_one() == 1
