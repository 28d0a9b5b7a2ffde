"""Declarative base, naming convention and portable column types."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive).

    On SQLite the value is stored as SQLAlchemy's text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, which
    sorts and compares as the times do. The two conversions there are done directly
    (:meth:`bind_processor`, :meth:`result_processor`), not by this decorator's methods around
    SQLAlchemy's own: the same text, for a third to a fifth of the interpreter time. A serve reads
    a few dozen of these and binds several inside the database's write lock. On PostgreSQL the
    driver's aware values are only moved to UTC, by one function instead of two.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = UTC

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            return value.isoformat(" ", "microseconds")[:26]  # without its "+00:00"

        return to_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        utc = UTC
        if dialect.name != "sqlite":
            if dialect.type_descriptor(self.impl_instance).result_processor(dialect, coltype) is not None:
                return super().result_processor(dialect, coltype)

            def from_driver(value: datetime | None) -> datetime | None:  # the driver's datetime, aware or not
                if value is None:
                    return None
                return value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)

            return from_driver
        parse = datetime.fromisoformat

        def from_text(value: Any) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, datetime):  # pragma: no cover - SQLite hands back text
                moment = value
            elif len(value) == 26 and value[19] == ".":  # as stored: YYYY-MM-DD HH:MM:SS.ffffff, in UTC
                return parse(value + "+00:00")
            else:
                moment = parse(value)  # other ISO text (SQLite's own CURRENT_TIMESTAMP, a date)
            return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)

        return from_text

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        dict[str, str]: JSON(),
        list[Any]: JSON(),
        list[str]: JSON(),
    }


_id_bytes: Callable[[int], bytes] = os.urandom  # tests may swap in a seeded source (tests/support/world.py)


def new_id() -> str:
    """A random 128-bit surrogate id (32 hex digits): never derived from any identifier."""
    return _id_bytes(16).hex()


ID = String(32)
