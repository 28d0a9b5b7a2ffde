"""Portable SQL expressions the bulk readers use to get plain numbers straight from the database.

- ``epoch_us(col)``: a UTC datetime column as whole microseconds since the Unix epoch (NULL stays
  NULL), so millions of timestamps arrive as integers instead of parsed ``datetime`` objects;
- ``json_number(col, key)``: ``col[key]`` of a JSON column when it is a JSON number, else NULL;
- ``stored_instant(col)`` with :func:`instants_us`: the same microseconds, where the database can
  hand over its stored text faster than it can compute the number: SQLite's UTC text
  (``'YYYY-MM-DD HH:MM:SS.ffffff'``) is parsed by numpy, about ten times faster than ``strftime``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class epoch_us(FunctionElement[int]):
    type = BigInteger()
    inherit_cache = True


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (see UTCDateTime)
    col = compiler.process(element.clauses, **kw)
    # whole seconds from the text without its fraction: SQLite keeps times in milliseconds, so
    # strftime of '... 23:59:59.999999' would round up to the next second
    return (f"(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({col}, 21, 6) AS INTEGER))")


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {col}) * 1000000 AS BIGINT)"


class json_number(FunctionElement[float]):
    type = Float()
    inherit_cache = True


def _json_parts(element: json_number, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, key = list(element.clauses)
    name = str(key.value)
    if not name.isidentifier():
        raise ValueError(f"json_number: key {name!r} must be a plain name")
    return compiler.process(column, **kw), name


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    col, name = _json_parts(element, compiler, **kw)
    return (f"(CASE WHEN json_type({col}, '$.{name}') IN ('integer', 'real') "
            f"THEN json_extract({col}, '$.{name}') END)")


@compiles(json_number, "postgresql")
def _json_number_postgresql(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    col, name = _json_parts(element, compiler, **kw)
    return (f"(CASE WHEN json_typeof(({col})::json -> '{name}') = 'number' "
            f"THEN CAST(({col})::json ->> '{name}' AS DOUBLE PRECISION) END)")


class stored_instant(FunctionElement[Any]):
    """A UTC datetime column as stored (SQLite: its text) or as epoch microseconds (PostgreSQL)."""

    inherit_cache = True


@compiles(stored_instant, "sqlite")
def _stored_instant_sqlite(element: stored_instant, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(stored_instant, "postgresql")
def _stored_instant_postgresql(element: stored_instant, compiler: SQLCompiler, **kw: Any) -> str:
    return _epoch_us_postgresql(epoch_us(*element.clauses), compiler, **kw)


def instants_us(values: Sequence[str | int]) -> npt.NDArray[np.int64]:
    """``stored_instant`` values as epoch microseconds (none of them NULL)."""
    if values and isinstance(values[0], str):
        return np.array(values, dtype="datetime64[us]").astype(np.int64)
    return np.array(values, dtype=np.int64)
