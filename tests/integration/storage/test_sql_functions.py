"""The bulk readers' SQL expressions give the same numbers on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientEventRow, PatientRow, new_id
from nudge_engine.adapters.sql_functions import epoch_us, instants_us, json_number, stored_instant

MOMENTS = [datetime(2026, 11, 30, 15, 0, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
           datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=7)]
PROPERTIES = [{"minutes": 30}, {"minutes": 12.5}, {"minutes": "30"}, {}]


def test_stored_instants_and_json_numbers_read_as_plain_numbers(engine: Engine) -> None:
    patient = new_id()
    with Session(engine) as session:
        session.add(PatientRow(id=patient, shard_key=0, created_at=MOMENTS[0]))
        session.flush()
        for k, (at, props) in enumerate(zip(MOMENTS, PROPERTIES, strict=True)):
            session.add(PatientEventRow(id=new_id(), patient_id=patient, type="activity", occurred_at=at,
                                        received_at=at, properties=props, idempotency_key=f"k{k}", response={}))
        session.commit()
        e = PatientEventRow
        rows = session.execute(
            select(stored_instant(e.occurred_at), epoch_us(e.occurred_at), json_number(e.properties, "minutes"))
            .order_by(e.idempotency_key)
        ).all()
    expected_us = [round((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) for at in MOMENTS]
    assert instants_us([r[0] for r in rows]).tolist() == expected_us
    assert [r[1] for r in rows] == expected_us
    assert [r[2] for r in rows] == [30, 12.5, None, None]
