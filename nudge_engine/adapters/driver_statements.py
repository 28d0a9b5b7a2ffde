"""Hot statements compiled once and run as driver SQL: SQLAlchemy's statement, without its per-call compile step.

``Connection.execute`` of a Core statement computes the statement's cache key, looks up the compiled
form and builds the bound values through a dictionary on every call. For a statement with several
subqueries that is tens of microseconds, more than SQLite takes to run it, and where the statement
runs inside the database's one write lock, every writer waits for it. A :class:`DriverStatement`
compiles its statement once per dialect and runs it with ``Connection.exec_driver_sql`` on the
values in the compiled order, each converted by its bind parameter's own type (the same
``bind_processor`` SQLAlchemy would apply). Same SQL, same values, same transaction; only for
dialects with positional parameters (SQLite's ``?``), and not for expanding (IN-list) parameters.

A :class:`DriverQuery` does the same for a hot ``SELECT`` on any of the two dialects, on the driver's own
cursor, and converts its rows' values as SQLAlchemy's result would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

Slot = tuple[str, Any, Callable[[Any], Any] | None]  # (name, value if fixed, converter)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    slots: tuple[Slot, ...]


_REQUIRED = object()
_Made = TypeVar("_Made")


class _PerDialect(Generic[_Made]):
    """What ``make`` makes of a statement for a dialect, made on first use and kept (one per dialect name)."""

    def __init__(self, make: Callable[[Dialect], _Made]) -> None:
        self._make = make
        self._found: dict[str, _Made] = {}
        self._lock = threading.Lock()

    def __call__(self, dialect: Dialect) -> _Made:
        found = self._found.get(dialect.name)
        if found is None:
            found = self._make(dialect)
            with self._lock:
                self._found[dialect.name] = found
        return found


class DriverStatement:
    """``statement`` run as driver SQL: ``execute(connection, params)`` as ``connection.execute`` would."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled = _PerDialect(self._compile)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = _sql(self.statement, dialect)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: driver statements need positional parameters")
        slots = _slots([(name, compiled.binds[name]) for name in compiled.positiontup], dialect)
        return _Compiled(compiled.string, slots)

    def values(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's values for ``params`` (a missing required value raises ``KeyError``)."""
        return tuple(_values(self._compiled(dialect).slots, params))

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        """Run on ``params``, as ``connection.execute(statement, params)`` would."""
        return self.execute_values(connection, self.values(connection.dialect, params))

    def execute_values(self, connection: Connection, values: tuple[Any, ...]) -> CursorResult[Any]:
        """Run on driver ``values`` made beforehand by :meth:`values` (for this connection's dialect)."""
        return connection.exec_driver_sql(self._compiled(connection.dialect).sql, values)


@dataclass(frozen=True, slots=True)
class _Query:
    sql: str
    slots: tuple[Slot, ...]
    named: bool  # the driver takes a mapping (PostgreSQL's %(name)s), else a sequence (SQLite's ?)
    types: tuple[Any, ...]  # the selected columns' SQLAlchemy types, as the dialect implements them


class DriverQuery:
    """A hot ``SELECT`` run on the driver's own cursor: its rows as plain tuples, each value converted as
    ``Connection.execute(...).all()`` would convert it (the column type's ``result_processor``).

    For a read of many rows and columns, SQLAlchemy's execution context, cursor description and row objects
    cost more of the caller's interpreter time than the driver's call (next-nudge's 16-row queue read on
    PostgreSQL: 325–353 µs of CPU through ``Connection.execute``, 158–199 µs on the cursor). Same SQL, same
    values, same transaction; a driver error is raised as SQLAlchemy's ``DBAPIError``, and a connection found
    dead is invalidated, as SQLAlchemy does. The engine's ``before_cursor_execute`` and ``after_cursor_execute``
    listeners are called as for any statement, with no execution context (None). Not for expanding (IN-list)
    parameters.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled = _PerDialect(self._compile)
        self._converting: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}
        self._lock = threading.Lock()

    def _compile(self, dialect: Dialect) -> _Query:
        compiled = _sql(self.statement, dialect)
        if compiled.positional:  # one value per placeholder, in order
            binds = [(name, compiled.binds[name]) for name in compiled.positiontup or ()]
        else:  # one value per name
            binds = list({name: bind for bind, name in compiled.bind_names.items()}.items())
        types = tuple(column.type.dialect_impl(dialect) for column in compiled._result_columns)
        return _Query(compiled.string, _slots(binds, dialect), not compiled.positional, types)

    def _converters(self, dialect: Dialect, cursor: Any) -> list[tuple[int, Callable[[Any], Any]]]:
        """(column, converter) for the columns whose values SQLAlchemy converts, from the first run's cursor
        description (a driver's type codes decide some converters, PostgreSQL's numerics for one)."""
        found = self._converting.get(dialect.name)
        if found is None:
            codes = [column[1] for column in cursor.description]
            processors = [t.result_processor(dialect, code) for t, code in zip(self._compiled(dialect).types, codes,
                                                                               strict=True)]
            found = [(i, f) for i, f in enumerate(processors) if f is not None]
            with self._lock:
                self._converting[dialect.name] = found
        return found

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The statement's rows for ``params`` on ``connection``'s transaction (a missing value raises ``KeyError``)."""
        query = self._compiled(connection.dialect)
        values = _values(query.slots, params)
        bound: Any = dict(zip((name for name, _, _ in query.slots), values, strict=True)) if query.named else values
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        observed = connection._has_events or connection.engine._has_events  # listeners (tracing, tests) see it
        try:
            if observed:
                connection.dispatch.before_cursor_execute(connection, cursor, query.sql, bound, None, False)
            run_on_cursor(connection, cursor, query.sql, bound)
            fetched = cursor.fetchall()
            converting = self._converters(connection.dialect, cursor)
            if observed:
                connection.dispatch.after_cursor_execute(connection, cursor, query.sql, bound, None, False)
        finally:
            cursor.close()
        if not converting:  # the drivers' rows are tuples already (sqlite3's and psycopg's default row makers)
            return fetched if not fetched or type(fetched[0]) is tuple else [tuple(row) for row in fetched]
        out: list[tuple[Any, ...]] = []
        for row in fetched:
            values = list(row)
            for i, convert in converting:
                values[i] = convert(values[i])
            out.append(tuple(values))
        return out


def _sql(statement: ClauseElement, dialect: Dialect) -> SQLCompiler:
    """``statement`` compiled for ``dialect``."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):  # pragma: no cover - DML and SELECT compile to SQL
        raise TypeError(f"{type(compiled).__name__}: not an SQL statement")
    return compiled


def _slots(binds: list[tuple[str, Any]], dialect: Dialect) -> tuple[Slot, ...]:
    """Per bound parameter (name, ``BindParameter``): its slot, a fixed value already converted for the driver or
    the converter (the type's ``bind_processor``) of a value the caller gives."""
    slots: list[Slot] = []
    for name, bind in binds:
        if bind.expanding:
            raise ValueError(f"{name}: expanding parameters are not supported")
        fixed = _REQUIRED if bind.required else bind.effective_value
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if fixed is not _REQUIRED and processor is not None:
            fixed, processor = processor(fixed), None
        slots.append((name, fixed, processor))
    return tuple(slots)


def _values(slots: tuple[Slot, ...], params: Mapping[str, Any]) -> list[Any]:
    """The driver's value for each slot: its fixed value, or ``params``' value converted for the driver."""
    out: list[Any] = []
    for name, fixed, processor in slots:
        if fixed is _REQUIRED:
            value = params[name]
            out.append(value if processor is None else processor(value))
        else:
            out.append(fixed)
    return out


def run_on_cursor(connection: Connection, cursor: Any, sql: str, parameters: Any = None) -> None:
    """``cursor.execute(sql, parameters)`` on ``connection``'s driver cursor; a failure raises SQLAlchemy's
    ``DBAPIError`` (``.orig`` keeps the driver's error and its SQLSTATE), and a connection found dead is
    invalidated, so the pool replaces it, as SQLAlchemy would do."""
    dialect = connection.dialect
    error = dialect.loaded_dbapi.Error
    try:
        if parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
    except error as exc:
        dead = dialect.is_disconnect(exc, connection.connection, cursor)
        if dead:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, None, exc, error, hide_parameters=True, connection_invalidated=dead, dialect=dialect
        ) from exc
