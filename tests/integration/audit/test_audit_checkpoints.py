from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientRow, new_id
from nudge_engine.adapters.orm.audit import AuditCheckpointRow
from nudge_engine.adapters.unit_of_work import UnitOfWorkFactory
from nudge_engine.audit.checkpoints import write_checkpoint_file
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from nudge_engine.domain.errors import IntegrityError
from tests.integration.audit.conftest import NOW
from tests.integration.audit.trail_kit import new_signing_key

EVENT = AuditEvent(event_type="served", actor_role="service", patient_ref="cd" * 16, nudge_id="water-500")


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    return AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path / "checkpoints")


def _append(engine: Engine, trail: AuditTrail, n: int) -> None:
    with Session(engine) as session:
        trail.append(session, [EVENT] * n, now=NOW)
        session.commit()


def test_a_checkpoint_is_a_new_read_only_file_and_a_row_signing_the_head(engine: Engine, trail: AuditTrail) -> None:
    _append(engine, trail, 5)
    with Session(engine) as session:
        checkpoint = trail.checkpoint(session, now=NOW)
        session.commit()
        row = session.scalars(select(AuditCheckpointRow)).one()
    assert checkpoint is not None and (checkpoint.head_seq, row.head_seq, row.signature) == (5, 5, checkpoint.signature)
    assert trail.checkpoint_dir is not None
    (path,) = trail.checkpoint_dir.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert json.loads(path.read_text())["head_hash"] == checkpoint.head_hash


def test_checkpoint_files_are_never_overwritten(trail: AuditTrail, engine: Engine) -> None:
    _append(engine, trail, 1)
    with Session(engine) as session:
        checkpoint = trail.checkpoint(session, now=NOW)
        session.commit()
    assert checkpoint is not None and trail.checkpoint_dir is not None
    with pytest.raises(FileExistsError):  # O_EXCL refuses even where the 0444 mode would not (root)
        write_checkpoint_file(trail.checkpoint_dir, checkpoint)


def test_an_empty_trail_has_nothing_to_sign_and_an_unchanged_head_is_not_signed_twice(
    engine: Engine, trail: AuditTrail
) -> None:
    with Session(engine) as session:
        assert trail.checkpoint(session, now=NOW) is None
    _append(engine, trail, 2)
    with Session(engine) as session:
        first = trail.checkpoint(session, now=NOW)
        session.commit()
        second = trail.checkpoint(session, now=NOW)
        session.commit()
        assert first is not None and second is not None and first.signature == second.signature
        assert len(session.scalars(select(AuditCheckpointRow)).all()) == 1


def test_the_engine_refuses_to_sign_a_chain_that_is_already_broken(engine: Engine, trail: AuditTrail) -> None:
    _append(engine, trail, 3)
    with Session(engine) as session:
        trail.checkpoint(session, now=NOW)
        session.commit()
    _append(engine, trail, 3)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_records SET nudge_id = 'walk-10' WHERE seq = 5"))
    with Session(engine) as session, pytest.raises(IntegrityError, match="audit record 5"):
        trail.checkpoint(session, now=NOW)


def test_a_checkpoint_file_alone_still_protects_the_trail_when_database_rows_are_gone(
    engine: Engine, trail: AuditTrail
) -> None:
    _append(engine, trail, 4)
    with Session(engine) as session:
        trail.checkpoint(session, now=NOW)
        session.commit()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text("DELETE FROM audit_records WHERE seq > 2"))
        conn.execute(text("UPDATE audit_chain_head SET seq = 2, hash = (SELECT hash FROM audit_records WHERE seq = 2)"))
    with Session(engine) as session:
        result = trail.verify(session)
    assert not result.ok and result.first_bad_seq == 3 and "truncated" in (result.reason or "")


def test_an_unreadable_checkpoint_file_fails_verification(engine: Engine, trail: AuditTrail) -> None:
    _append(engine, trail, 1)
    assert trail.checkpoint_dir is not None
    trail.checkpoint_dir.mkdir(parents=True)
    (trail.checkpoint_dir / "000000000001-bogus.json").write_text("{not json")
    with Session(engine) as session:
        result = trail.verify(session)
    assert not result.ok and "unreadable" in (result.reason or "")


def test_when_the_audit_write_fails_the_change_it_records_rolls_back(engine: Engine, trail: AuditTrail) -> None:
    _append(engine, trail, 2)
    with engine.begin() as conn:  # inject the failure: a row already sits where the next record goes
        conn.execute(
            text(
                "INSERT INTO audit_records (seq, recorded_at, event_type, actor_role, rule_ids, details, "
                "prev_hash, hash) VALUES (3, :t, 'served', 'service', '[]', '{}', 'x', 'y')"
            ),
            {"t": NOW},
        )
    patient = new_id()
    uow_factory = UnitOfWorkFactory(engine)
    with pytest.raises(DatabaseIntegrityError), uow_factory() as uow:
        uow.session.execute(insert(PatientRow), [{"id": patient, "shard_key": 7, "created_at": NOW}])
        trail.append(uow.session, [EVENT], now=NOW)
        uow.commit()
    with Session(engine) as session:
        assert session.get(PatientRow, patient) is None
        assert session.execute(text("SELECT seq FROM audit_chain_head")).scalar_one() == 2
