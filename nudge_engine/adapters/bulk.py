"""Bulk writes through SQLAlchemy Core: one executemany per statement, not one round trip per row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 20_000
IN_LIST = 500  # ids per ``IN (...)`` list: well inside SQLite's and PostgreSQL's parameter limits

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = IN_LIST) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _table(row_type: Any) -> Table:
    table = row_type.__table__
    if not isinstance(table, Table):  # pragma: no cover - every mapped class here maps a Table
        raise TypeError(f"{row_type!r} is not mapped to a Table")
    return table


def bulk_insert(
    session: Session, row_type: Any, rows: Sequence[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert ``rows`` into the table of ``row_type``; with ``ignore_conflicts``, skip rows whose key exists."""
    if not rows:
        return
    table = _table(row_type)
    stmt: Any = insert(table)
    if ignore_conflicts:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(table).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing()
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise NotImplementedError(dialect)
    for chunk in chunked(rows, CHUNK):
        session.execute(stmt, list(chunk))
