"""structlog configuration: JSON lines, a request/job id on every line, identifiers scrubbed.

``configure_logging`` is called once by the composition root. ``bind_job``/``bind_request`` put a
correlation id into the context of the current task so every line carries it.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

# Keys whose values are identifiers or free text and must never reach a log line.
IDENTIFIER_KEYS = frozenset(
    {
        "name", "names", "given", "family", "first", "last", "maiden", "prefix", "suffix",
        "birth_date", "birthdate", "birthDate", "dob", "address", "addresses", "line", "city", "zip",
        "postal_code", "postalCode", "phone", "telecom", "email", "ssn", "mrn", "record_numbers",
        "identifier", "identifiers", "drivers", "passport", "comment", "free_text", "external_id",
        "patient_external_id", "source_id", "password", "token",
    }
)
REDACTED = "[redacted]"


def scrub_identifiers(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop the values of identifier keys, at any depth of dicts and lists."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (REDACTED if k in IDENTIFIER_KEYS else clean(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    for key in list(event_dict):
        if key in IDENTIFIER_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = clean(event_dict[key])
    return event_dict


def configure_logging(*, level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library logging once, for the whole process."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub_identifiers,
        structlog.processors.dict_tracebacks,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
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
