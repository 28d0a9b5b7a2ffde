"""``UTCDateTime`` columns: aware UTC times in, the same times out, stored so that SQL compares them as times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientRow, new_id

MOMENTS = [
    datetime(2026, 11, 30, 15, 0, tzinfo=UTC),  # no fraction: still stored with six digits
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2))),  # another offset: stored as its UTC time
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
]


def _store(engine: Engine, moments: list[datetime]) -> list[str]:
    ids = [new_id() for _ in moments]
    with Session(engine) as session:
        for k, (pid, at) in enumerate(zip(ids, moments, strict=True)):
            session.add(PatientRow(id=pid, shard_key=k, created_at=at))
        session.commit()
    return ids


def test_times_come_back_as_the_same_aware_utc_times(engine: Engine) -> None:
    ids = _store(engine, MOMENTS)
    with engine.connect() as db:
        found = dict(db.execute(select(PatientRow.id, PatientRow.created_at).where(PatientRow.id.in_(ids))).all())
    for pid, at in zip(ids, MOMENTS, strict=True):
        assert found[pid] == at
        assert found[pid].utcoffset() == timedelta(0)


def test_sql_orders_and_compares_the_stored_times_as_times(engine: Engine) -> None:
    ids = _store(engine, MOMENTS)
    cut = datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=UTC)
    with engine.connect() as db:
        ordered = db.execute(select(PatientRow.created_at).where(PatientRow.id.in_(ids))
                             .order_by(PatientRow.created_at)).scalars().all()
        later = db.execute(select(func.count()).where(PatientRow.id.in_(ids), PatientRow.created_at >= cut)).scalar()
    assert ordered == sorted(MOMENTS)
    assert later == sum(1 for at in MOMENTS if at >= cut)


def test_a_naive_time_is_refused(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(PatientRow(id=new_id(), shard_key=0, created_at=datetime(2026, 1, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()


def test_sqlite_stores_sqlalchemys_text_and_reads_other_iso_text(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the stored text is SQLite's")
    ids = _store(engine, MOMENTS[:2])
    with engine.begin() as db:
        stored = db.execute(text("SELECT created_at FROM patients WHERE id = :id"), {"id": ids[0]}).scalar()
        assert stored == "2026-11-30 15:00:00.000000"
        db.execute(text("UPDATE patients SET created_at = :at WHERE id = :id"),
                   {"at": "2026-11-30 16:00:00", "id": ids[0]})  # as SQLite's CURRENT_TIMESTAMP writes it
        db.execute(text("UPDATE patients SET created_at = :at WHERE id = :id"),
                   {"at": "2026-11-30T18:00:00.5+02:00", "id": ids[1]})
        read = dict(db.execute(select(PatientRow.id, PatientRow.created_at).where(PatientRow.id.in_(ids))).all())
    assert read[ids[0]] == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert read[ids[1]] == datetime(2026, 11, 30, 16, 0, 0, 500000, tzinfo=UTC)
