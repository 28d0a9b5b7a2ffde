"""A :class:`DriverStatement` sends the driver what ``Connection.execute`` of its statement sends; a
:class:`DriverQuery` returns the rows it returns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, literal_column, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.driver_statements import DriverQuery, DriverStatement
from nudge_engine.adapters.migrations import upgrade
from nudge_engine.adapters.orm import PatientRow, ReadyNudgeRow
from nudge_engine.audit.trail import HASH_FUNCTION, INSERT_ONE, spliced_hash
from nudge_engine.services.delivery import CLAIM_SERVED, SERVE_STATE, SERVE_STATE_ROWS

NOW = datetime(2026, 12, 1, 9, 30, 0, 250, tzinfo=UTC)
CLAIM = {"rid": "r1", "b_now": NOW, "pid": "p1", "version": 3, "prefs_at": None, "since": NOW - timedelta(days=8),
         "n_served": 2, "served": ["s1", "s2"], "b_caution": ["rest first"], "b_digest": "sha256:x"}
RECORD = {"r_recorded_at": NOW, "r_event_type": "nudge.served", "r_actor_role": "service", "r_actor_id": "t1",
          "r_patient_ref": "p1", "r_nudge_id": None, "r_decision": "deliver", "r_rule_ids": "[]",
          "r_ruleset_digest": None, "r_details": "{}", "p_head": b"{\"a\":", "p_mid": b",", "p_tail": b"}"}


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.create_function(HASH_FUNCTION, 5, spliced_hash))
    upgrade(engine)
    yield engine
    engine.dispose()


def _sent(engine: Engine, run: Any) -> tuple[str, Any]:
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as db:
            run(db)
            db.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize(("statement", "params"), [
    (CLAIM_SERVED["sqlite"][0], CLAIM), (CLAIM_SERVED["sqlite"][1], CLAIM),
    (CLAIM_SERVED["sqlite"][1], {**CLAIM, "prefs_at": NOW, "b_caution": []}),
    (INSERT_ONE, RECORD),
], ids=["claim-as-built", "claim-rechecked", "claim-with-preferences", "audit-record"])
def test_the_driver_gets_the_sql_and_values_that_connection_execute_sends(
    sqlite_engine: Engine, statement: Any, params: dict[str, Any]
) -> None:
    driver = DriverStatement(statement)
    expected = _sent(sqlite_engine, lambda db: db.execute(statement, params))
    assert _sent(sqlite_engine, lambda db: driver.execute(db, params)) == (expected[0], tuple(expected[1]))
    with sqlite_engine.connect() as db:
        assert driver.values(db.dialect, params) == tuple(expected[1])


def test_a_run_changes_what_the_statement_changes(sqlite_engine: Engine) -> None:
    rename = DriverStatement(update(PatientRow).where(PatientRow.id == bindparam("pid"))
                             .values(timezone=bindparam("zone"), enrolled_at=bindparam("at")))
    with sqlite_engine.begin() as db:
        db.execute(PatientRow.__table__.insert(), {"id": "p1", "shard_key": 1, "created_at": NOW, "timezone": "UTC"})
        assert rename.execute(db, {"pid": "p1", "zone": "Europe/Berlin", "at": NOW}).rowcount == 1
        assert rename.execute(db, {"pid": "nobody", "zone": "UTC", "at": NOW}).rowcount == 0
    with sqlite_engine.connect() as db:
        row = db.execute(select(PatientRow.timezone, PatientRow.enrolled_at).where(PatientRow.id == "p1")).one()
    assert tuple(row) == ("Europe/Berlin", NOW)


def test_a_missing_value_raises_before_anything_is_sent(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as db, pytest.raises(KeyError, match="rid"):
        DriverStatement(CLAIM_SERVED["sqlite"][0]).execute(db, {k: v for k, v in CLAIM.items() if k != "rid"})


def test_in_lists_and_named_parameter_styles_are_refused(sqlite_engine: Engine) -> None:
    in_list = DriverStatement(select(ReadyNudgeRow.id).where(ReadyNudgeRow.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="expanding"):
        in_list.values(sqlite_engine.dialect, {"ids": ["a"]})
    with pytest.raises(ValueError, match="positional"):
        DriverStatement(CLAIM_SERVED["postgresql"][0]).values(postgresql.psycopg.dialect(), CLAIM)


def _queue(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as db:
        db.execute(PatientRow.__table__.insert(), {"id": "p1", "shard_key": 1, "created_at": NOW, "timezone": "UTC"})
        db.execute(ReadyNudgeRow.__table__.insert(), [
            {"id": f"r{i}", "patient_id": "p1", "nudge_id": f"n{i}", "status": status, "score": 0.5 + i / 8,
             "caution": ["rest first"] if i else [], "context_version": 1, "ruleset_digest": "sha256:x",
             "created_at": NOW, "not_before": NOW if i == 1 else None, "expires_at": NOW + timedelta(days=i),
             "served_at": NOW - timedelta(hours=i) if status == "served" else None}
            for i, status in enumerate(["ready", "ready", "served"])
        ])


def test_a_driver_query_returns_the_rows_connection_execute_returns(engine: Engine) -> None:
    _queue(engine)
    params = {"pid": "p1", "since": NOW - timedelta(days=8)}
    with engine.connect() as db:
        expected = [tuple(row) for row in db.execute(SERVE_STATE, params).all()]
        first, again = SERVE_STATE_ROWS.rows(db, params), SERVE_STATE_ROWS.rows(db, params)

    assert len(expected) == 3
    assert first == again == expected
    rows = [dict(zip(SERVE_STATE.selected_columns.keys(), row, strict=True)) for row in first]
    served = next(row for row in rows if row["id"] == "r2")
    assert served["served_at"] == NOW - timedelta(hours=2) and served["served_at"].utcoffset() == timedelta(0)
    assert {row["id"]: row["flagged"] for row in rows} == {"r0": False, "r1": False, "r2": False}


def test_a_driver_query_is_seen_by_the_engines_listeners(engine: Engine) -> None:
    _queue(engine)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_a: seen.append(statement))
    with engine.connect() as db:
        SERVE_STATE_ROWS.rows(db, {"pid": "p1", "since": NOW})
    assert len(seen) == 1 and "ready_nudges" in seen[0]


def test_a_driver_query_that_fails_raises_sqlalchemys_error_with_the_drivers(engine: Engine) -> None:
    missing = DriverQuery(select(literal_column("1")).select_from(text("no_such_table")))
    with engine.connect() as db, pytest.raises(DBAPIError) as raised:
        missing.rows(db, {})
    assert isinstance(raised.value.orig, engine.dialect.loaded_dbapi.Error)
