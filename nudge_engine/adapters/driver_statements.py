"""Hot statements compiled once and run as driver SQL: SQLAlchemy's statement, without its per-call compile step.

``Connection.execute`` of a Core statement computes the statement's cache key, looks up the compiled
form and builds the bound values through a dictionary on every call. For a statement with several
subqueries that is tens of microseconds, more than SQLite takes to run it, and where the statement
runs inside the database's one write lock, every writer waits for it. A :class:`DriverStatement`
compiles its statement once per dialect and runs it with ``Connection.exec_driver_sql`` on the
values in the compiled order, each converted by its bind parameter's own type (the same
``bind_processor`` SQLAlchemy would apply). Same SQL, same values, same transaction; only for
dialects with positional parameters (SQLite's ``?``), and not for expanding (IN-list) parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    slots: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]  # (name, value if fixed, converter)


_REQUIRED = object()


class DriverStatement:
    """``statement`` run as driver SQL: ``execute(connection, params)`` as ``connection.execute`` would."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is not None:
            return found
        compiled = self.statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):  # pragma: no cover - DML and SELECT compile to SQL
            raise TypeError(f"{type(compiled).__name__}: not an SQL statement")
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: driver statements need positional parameters")
        slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"{name}: expanding parameters are not supported")
            fixed = _REQUIRED if bind.required else bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if fixed is not _REQUIRED and processor is not None:
                fixed, processor = processor(fixed), None
            slots.append((name, fixed, processor))
        found = _Compiled(compiled.string, tuple(slots))
        with self._lock:
            self._by_dialect[dialect.name] = found
        return found

    def values(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's values for ``params`` (a missing required value raises ``KeyError``)."""
        out: list[Any] = []
        for name, fixed, processor in self._compiled(dialect).slots:
            if fixed is _REQUIRED:
                value = params[name]
                out.append(value if processor is None else processor(value))
            else:
                out.append(fixed)
        return tuple(out)

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        """Run on ``params``, as ``connection.execute(statement, params)`` would."""
        return self.execute_values(connection, self.values(connection.dialect, params))

    def execute_values(self, connection: Connection, values: tuple[Any, ...]) -> CursorResult[Any]:
        """Run on driver ``values`` made beforehand by :meth:`values` (for this connection's dialect)."""
        return connection.exec_driver_sql(self._compiled(connection.dialect).sql, values)
