"""``AuditTrail.append_and_commit``: the last step of a request's unit of work, on every backend.

On PostgreSQL the records and the COMMIT travel in one message once the connection has seen the
chain head; these tests pin that the result is the same chain ``append`` + ``commit`` makes, and
that a record that cannot be chained commits nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientRow, new_id
from nudge_engine.adapters.orm.audit import AuditChainHeadRow, AuditRecordRow
from nudge_engine.adapters.unit_of_work import UnitOfWorkFactory
from nudge_engine.audit import trail as trail_module
from nudge_engine.audit.trail import SESSION_FUNCTION, AuditEvent, AuditTrail, EventType, SessionFunction
from tests.integration.audit.conftest import NOW
from tests.integration.audit.trail_kit import new_signing_key


def _served(patient: str, n: int = 1) -> list[AuditEvent]:
    return [
        AuditEvent(EventType.SERVED, "service", actor_id="token-1", patient_ref=patient, nudge_id=f"walk-{i}",
                   decision="deliver", rule_ids=("EX-03",), ruleset_digest="sha256:" + "ab" * 32,
                   details={"delivery_id": new_id(), "rechecked": i % 2 == 0, "cautions": i, "age": 93})
        for i in range(n)
    ]


def _enrol(session: Session, patient: str) -> None:
    session.execute(insert(PatientRow), [{"id": patient, "shard_key": 7, "created_at": NOW}])


def test_state_changes_and_their_records_commit_together_and_the_chain_verifies(
    engine: Engine, tmp_path: Path
) -> None:
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    patients = [new_id() for _ in range(6)]
    for i, patient in enumerate(patients):  # the first sees no head yet; the later ones go in one message
        with uows() as uow:
            _enrol(uow.session, patient)
            trail.append_and_commit(uow, _served(patient, n=1 + i % 3), now=NOW)
        for _ in range(6):  # rolled-back reads in between (psycopg then deallocates its prepared statements)
            with uows() as uow:
                uow.session.execute(select(PatientRow.id).where(PatientRow.id == patient)).one()
    with uows() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(PatientRow)) == len(patients)
        seqs = s.scalars(select(AuditRecordRow.seq).order_by(AuditRecordRow.seq)).all()
        assert seqs == list(range(1, 1 + sum(1 + i % 3 for i in range(len(patients)))))
        head = s.get(AuditChainHeadRow, 1)
        assert head is not None and head.seq == seqs[-1]
        if engine.dialect.name == "postgresql":  # later appends went the one-message way: it made the function
            made = text("SELECT count(*) FROM pg_proc WHERE proname = :n AND pronamespace = pg_my_temp_schema()")
            assert s.scalar(made, {"n": SESSION_FUNCTION.removeprefix("pg_temp.")}) == 1
        row = s.scalars(select(AuditRecordRow).where(AuditRecordRow.seq == seqs[-1])).one()
        assert row.recorded_at == NOW and row.details["age"] == "90+" and row.rule_ids == ["EX-03"]
        trail.checkpoint(s, now=NOW)
        uow.commit()
        result = trail.verify(s)
    assert result.ok, result
    assert result.records_checked == len(seqs)


def test_a_record_that_cannot_be_chained_commits_nothing(engine: Engine, tmp_path: Path) -> None:
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    with uows() as uow:
        trail.append_and_commit(uow, _served(new_id()), now=NOW)
    with uows() as uow:  # the head row vanishes (on PostgreSQL the connection has already seen it)
        head = uow.session.execute(select(AuditChainHeadRow.seq, AuditChainHeadRow.hash)).one()
        uow.session.execute(delete(AuditChainHeadRow))
        uow.commit()
    patient = new_id()
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError), uows() as uow:
            _enrol(uow.session, patient)
            trail.append_and_commit(uow, _served(patient, n=2), now=NOW)
        with uows() as uow:
            assert uow.session.get(PatientRow, patient) is None
            assert uow.session.scalar(select(func.count()).select_from(AuditRecordRow)) == 1
            uow.session.add(AuditChainHeadRow(id=1, seq=head.seq, hash=head.hash, updated_at=NOW))  # put back
            uow.commit()
        with uows() as uow:  # the same connection, its session function kept through the rollback
            _enrol(uow.session, patient)
            trail.append_and_commit(uow, _served(patient, n=2), now=NOW)
        with uows() as uow:
            assert uow.session.get(PatientRow, patient) is not None
            trail.checkpoint(uow.session, now=NOW)
            uow.commit()
            result = trail.verify(uow.session)
        assert result.ok, result
        assert result.records_checked == 3
    else:  # SQLite appends in statements: a missing head is created again, and seq 1 is then taken
        with pytest.raises(DBAPIError), uows() as uow:
            _enrol(uow.session, patient)
            trail.append_and_commit(uow, _served(patient), now=NOW)
        with uows() as uow:
            assert uow.session.get(PatientRow, patient) is None


def test_a_connection_lost_before_its_committing_message_commits_nothing_and_is_replaced(
    engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-message path is PostgreSQL's")
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    with uows() as uow:  # opens the one-message path on this connection
        trail.append_and_commit(uow, _served(new_id()), now=NOW)
    patient = new_id()
    with uows() as uow:
        session = uow.session
        backend = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        _enrol(session, patient)
        with engine.connect() as other:  # the server ends that session (a restart, a network cut)
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(DBAPIError) as lost:
            trail.append_and_commit(uow, _served(patient), now=NOW)
        assert lost.value.connection_invalidated  # the pool will not hand the dead connection out again
    with uows() as uow:  # a fresh connection: nothing of the lost transaction, and the trail goes on
        assert uow.session.get(PatientRow, patient) is None
        _enrol(uow.session, patient)
        trail.append_and_commit(uow, _served(patient), now=NOW)
    with uows() as uow:
        assert uow.session.get(PatientRow, patient) is not None
        result = trail.verify(uow.session)
    assert result.ok and result.records_checked == 2, result


def test_concurrent_requests_leave_one_dense_verifiable_chain(engine: Engine, tmp_path: Path) -> None:
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    errors: list[BaseException] = []

    def request_loop(worker: int) -> None:
        try:
            for n in range(12):
                patient = new_id()
                with uows() as uow:
                    _enrol(uow.session, patient)
                    trail.append_and_commit(uow, _served(patient, n=1 + (worker + n) % 2), now=NOW)
        except BaseException as exc:  # surfaced by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=request_loop, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = sum(1 + (w + n) % 2 for w in range(6) for n in range(12))
    with uows() as uow:
        s = uow.session
        assert s.scalars(select(AuditRecordRow.seq).order_by(AuditRecordRow.seq)).all() == list(
            range(1, expected + 1)
        )
        assert s.scalar(select(func.count()).select_from(PatientRow)) == 72
        trail.checkpoint(s, now=NOW)
        uow.commit()
        result = trail.verify(s)
    assert result.ok, result


def test_without_the_right_to_create_temporary_objects_records_and_commit_go_apart(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trail_module, "_may_create_temp", lambda connection: False)  # TEMPORARY revoked
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    for n in (1, 2, 1):
        with uows() as uow:
            patient = new_id()
            _enrol(uow.session, patient)
            trail.append_and_commit(uow, _served(patient, n=n), now=NOW)
    with uows() as uow:
        s = uow.session
        if engine.dialect.name == "postgresql":
            made = text("SELECT count(*) FROM pg_proc WHERE proname = :n AND pronamespace = pg_my_temp_schema()")
            assert s.scalar(made, {"n": SESSION_FUNCTION.removeprefix("pg_temp.")}) == 0
        trail.checkpoint(s, now=NOW)
        uow.commit()
        result = trail.verify(s)
    assert result.ok, result
    assert result.records_checked == 4


REFUSE = SessionFunction(
    "pg_temp.nudge_test_refuse",
    "CREATE FUNCTION pg_temp.nudge_test_refuse (text) RETURNS void LANGUAGE plpgsql AS $function$\n"
    "BEGIN IF $1 = 'no' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'NET01'; END IF; END\n$function$",
)


@dataclass(frozen=True)
class _Gate:
    """A commit step that lets the commit through, or refuses it (``answer == "no"``)."""

    answer: str

    @property
    def function(self) -> SessionFunction:
        return REFUSE

    def args(self) -> list[Any]:
        return [self.answer]

    def run(self, connection: Connection) -> None:
        if self.answer == "no":
            raise RuntimeError("refused")


def test_a_commit_step_that_refuses_commits_neither_the_state_change_nor_its_records(
    engine: Engine, tmp_path: Path
) -> None:
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    uows = UnitOfWorkFactory(engine)
    kept: list[str] = []
    # on PostgreSQL the first commit opens the one-message path; the later steps then travel in the message
    for answer in ("yes", "yes", "no", "yes", "no"):
        patient = new_id()
        try:
            with uows() as uow:
                _enrol(uow.session, patient)
                trail.append_and_commit(uow, _served(patient), now=NOW, first=[_Gate(answer)])
            kept.append(patient)
        except (DBAPIError, RuntimeError) as error:
            assert answer == "no", error
            if isinstance(error, DBAPIError):
                assert getattr(error.orig, "sqlstate", None) == "NET01"
    with uows() as uow:
        s = uow.session
        assert set(s.scalars(select(PatientRow.id))) == set(kept)
        assert s.scalars(select(AuditRecordRow.patient_ref).order_by(AuditRecordRow.seq)).all() == kept
        if engine.dialect.name == "postgresql":  # the refusals went in the message: it made the function
            made = text("SELECT count(*) FROM pg_proc WHERE proname = :n AND pronamespace = pg_my_temp_schema()")
            assert s.scalar(made, {"n": REFUSE.name.removeprefix("pg_temp.")}) == 1
        trail.checkpoint(s, now=NOW)
        uow.commit()
        result = trail.verify(s)
    assert result.ok, result
    assert result.records_checked == 3
