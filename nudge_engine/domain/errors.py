"""Typed errors, grouped by how the caller reacts.

    NudgeEngineError
    ├── InvalidInput            the request or file is malformed; nothing was stored
    │   └── InvalidResource     one FHIR resource is malformed (names file, resource and field)
    ├── NotFound                the object does not exist, or is not the caller's
    ├── Conflict                the object is in a state that forbids the change (already decided ...)
    ├── InvalidRuleSet          a rule set or catalog does not validate
    ├── ConfigurationError      settings or secrets are missing or wrong
    └── IntegrityError          stored data failed a check (audit chain, key material)

Expected clinical outcomes ("blocked", "needs review") are results, never exceptions.
Messages carry ids and field names, never patient data.
"""

from __future__ import annotations


class NudgeEngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInput(NudgeEngineError):
    """The request or file is malformed; nothing of it was stored."""


class InvalidResource(InvalidInput):
    """One FHIR resource is malformed; the message names file, resource and field."""

    def __init__(self, *, resource: str, field: str, problem: str, source: str | None = None) -> None:
        self.resource = resource
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{resource}: field '{field}': {problem}")


class NotFound(NudgeEngineError):
    """The object does not exist, or belongs to somebody else."""


class Conflict(NudgeEngineError):
    """The object's state forbids the change (for example, an item already decided)."""


class Busy(NudgeEngineError):
    """Concurrent writers kept the work from completing; nothing was stored, and a retry may succeed."""


class InvalidRuleSet(NudgeEngineError):
    """A rule set or catalog does not validate; ``problems`` lists each with file, id and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems) if problems else "invalid rule set")


class ConfigurationError(NudgeEngineError):
    """Settings or secrets are missing or wrong."""


class IntegrityError(NudgeEngineError):
    """Stored data failed an integrity check (audit chain, key material)."""
