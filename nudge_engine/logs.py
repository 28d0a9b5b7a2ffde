"""structlog configuration: JSON lines, a request/job id on every line, identifiers scrubbed.

``configure_logging`` is called once by the composition root. ``bind_job`` puts a correlation id
into the context of the current task so every line carries it.

What keeps identifiers out of log lines:

- a processor drops the value of every field whose name marks an identifier or free text
  (:func:`nudge_engine.domain.identifiers.is_identifier_key`), at any depth, exceptions included;
- patient-app ids inside request paths (``/v1/patients/<id>/...``) are masked;
- tracebacks are rendered without local variables, and SQLAlchemy engines are built with
  ``hide_parameters`` so SQL errors never carry bound values.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from nudge_engine.domain.identifiers import IDENTIFIER_KEYS, is_identifier_key

__all__ = ["IDENTIFIER_KEYS", "REDACTED", "bind_job", "configure_logging", "get_logger", "scrub_identifiers"]

REDACTED = "[redacted]"
# Keys structlog and our processors own; never treated as identifiers even if a word matches.
_STRUCTURAL = frozenset({"event", "level", "timestamp", "logger", "exception", "job", "job_id", "request_id"})
_PATIENT_PATH = re.compile(r"(/patients/)[^/?#\s]+")


def _clean(key: str | None, value: Any) -> Any:
    if key is not None and key not in _STRUCTURAL and is_identifier_key(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(None, v) for v in value]
    if isinstance(value, str) and "/patients/" in value:
        return _PATIENT_PATH.sub(r"\1{patient_id}", value)
    return value


def scrub_identifiers(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop identifier and free-text values, at any depth, and mask patient ids in paths."""
    for key in list(event_dict):
        event_dict[key] = _clean(key, event_dict[key])
    return event_dict


class _StderrLoggerFactory:
    """Writes to the *current* ``sys.stderr`` (or a given stream), resolved per logger, not at configure time."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=self._stream or sys.stderr)


def configure_logging(*, level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog once for the whole process."""
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        tracebacks,
        scrub_identifiers,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_StderrLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


@contextmanager
def bind_job(kind: str, job_id: str | None = None) -> Iterator[str]:
    """Bind a job id (a fresh random one by default) to every log line inside the block."""
    jid = job_id or uuid.uuid4().hex[:16]
    with structlog.contextvars.bound_contextvars(job_id=jid, job=kind):
        yield jid


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
