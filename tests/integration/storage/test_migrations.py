"""The schema is created and changed only by the Alembic migrations, and they match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import downgrade, upgrade
from nudge_engine.adapters.orm import Base


def test_upgrade_from_empty_to_head_creates_every_model_table_and_downgrade_removes_them(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_autogenerate_against_head_finds_no_difference_from_the_models(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_every_table_after_the_migrations_has_the_primary_key_and_row_storage_its_model_declares(
    empty_database_url: str,
) -> None:
    # Autogenerate compares neither primary keys nor SQLite's WITHOUT ROWID: checked here instead.
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        found = inspect(engine)
        for name, table in Base.metadata.tables.items():
            assert found.get_pk_constraint(name)["constrained_columns"] == [c.name for c in table.primary_key], name
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                stored = {name: "WITHOUT ROWID" in sql.upper() for name, sql in conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
            for name, table in Base.metadata.tables.items():
                assert stored[name] == (table.dialect_options["sqlite"]["with_rowid"] is False), name
    finally:
        engine.dispose()
