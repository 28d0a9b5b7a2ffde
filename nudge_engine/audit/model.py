"""What an audit record says (contract §7), and the rules that keep it de-identified.

An :class:`AuditEvent` is validated when it is made, so nothing identifying can reach the trail:

- ``patient_ref`` is the patient's random surrogate id (``PatientRow.id``: 32 lowercase hex), never
  an identifier or anything derived from one; ``actor_id`` is a pseudonymous surrogate too.
- ``details`` holds codes, ids, counts and flags only: snake_case keys, none naming an identifier
  (name, address, phone, e-mail, birth date, record or insurance number, free text ...); values are
  ``int``, ``bool``, ``None``, code-like strings (no spaces, at most 128 characters), or lists and
  one level of nested mappings of those. Floats are refused (so the canonical form is exactly RFC
  8785, see :mod:`nudge_engine.audit.canonical`).
- An age above 89 (keys ``age`` or ``*_age``) is recorded as ``"90+"`` (HIPAA Safe Harbor).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.domain.identifiers import IDENTIFIER_KEYS, IDENTIFIER_WORDS, is_identifier_key

__all__ = ["IDENTIFIER_KEYS", "IDENTIFIER_WORDS", "ActorRole", "AuditEvent", "EventType"]


class EventType(StrEnum):
    """Every kind of audited decision or action."""

    # build cycle
    BUILT = "built"  # a nudge was chosen for a patient
    BLOCKED = "blocked"  # a candidate was blocked by a guardrail rule
    QUEUED = "queued"  # routed to clinician review
    SUPERSEDED = "superseded"  # a ready nudge was replaced by a newer build
    # clinician review
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    IDENTIFIERS_VIEWED = "identifiers_viewed"  # a clinician saw a patient's decrypted identifiers
    # serving and patient events
    SERVED = "served"
    DELIVERED = "delivered"
    OPENED = "opened"
    DISMISSED = "dismissed"
    COMPLETED = "completed"
    ACTIVITY = "activity"
    # patient data
    IMPORTED = "imported"
    ENROLLED = "enrolled"
    CONTEXT_REPLACED = "context_replaced"
    ERASED = "erased"
    PREFERENCES_CHANGED = "preferences_changed"
    FEEDBACK_RECEIVED = "feedback_received"  # a patient flagged a nudge (not right, unsafe, too many)
    RULE_REPORTED = "rule_reported"  # a clinician reported a rule that fired wrongly or failed to fire
    EVENT_QUARANTINED = "event_quarantined"  # an event outside the tracking plan was set aside, not stored
    EVENT_REPLAYED = "event_replayed"  # a repeated Idempotency-Key got the stored answer; nothing new stored
    # security and operations
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name, not a secret
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    KEY_ROTATED = "key_rotated"
    REQUEST_DENIED = "request_denied"
    LOGIN_FAILED = "login_failed"
    RULESET_LOADED = "ruleset_loaded"
    MODEL_RETRAINED = "model_retrained"
    ALERT_RAISED = "alert_raised"
    EXPORTED = "exported"
    CHECKPOINTED = "checkpointed"
    RETENTION_APPLIED = "retention_applied"  # raw events and decision details past their window deleted


class ActorRole(StrEnum):
    SYSTEM = "system"
    SERVICE = "service"
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    ADMIN = "admin"


# Words that, as a part of a details key, name an identifier or free text (HIPAA Safe Harbor).


# Record field names may not reappear as details keys (at any depth): each field's key then occurs
# exactly once in a record's canonical bytes, so no edit can shift text from one field into another
# and keep the hash (see ``canonical.record_bytes``).
RESERVED_KEYS = frozenset(
    {"v", "seq", "recorded_at", "event_type", "actor_role", "actor_id", "patient_ref", "nudge_id",
     "decision", "rule_ids", "ruleset_digest", "details", "prev_hash", "hash"}
)  # fmt: skip

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_CODE = re.compile(r"^[A-Za-z0-9_.:+/|#=<>-]{0,128}$")
_SURROGATE = re.compile(r"^[0-9a-f]{32}$")
_ACTOR = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
_NUDGE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_DECISION = re.compile(r"^[a-z_]{1,16}$")
_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_DIGEST = re.compile(r"^[A-Za-z0-9_.:+-]{1,80}$")
_EVENT_TYPES = frozenset(e.value for e in EventType)
_ACTOR_ROLES = frozenset(r.value for r in ActorRole)
MAX_INT = 2**53 - 1  # exact in every JSON implementation (RFC 8785 / I-JSON)
OLDEST_EXACT_AGE = 89


def _check_key(key: object, where: str) -> str:
    return _checked_key(key, where) if isinstance(key, str) else _check_new_key(key, where)


@functools.lru_cache(maxsize=4096)
def _checked_key(key: str, where: str) -> str:
    """Keys repeat from record to record (a build writes the same few for every patient): checked once."""
    return _check_new_key(key, where)


def _check_new_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidInput(f"audit details: key {where}{key!r} must be snake_case ASCII")
    if key in RESERVED_KEYS:
        raise InvalidInput(f"audit details: key '{where}{key}' is a record field; use the field itself")
    if is_identifier_key(key):
        raise InvalidInput(f"audit details: key '{where}{key}' would hold an identifier or free text")
    return key


def _scalar(key: str, value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise InvalidInput(f"audit details: '{key}' is out of range")
        if (key == "age" or key.endswith("_age")) and value > OLDEST_EXACT_AGE:
            return "90+"
        return value
    if isinstance(value, str):
        if not _CODE.match(value):
            raise InvalidInput(f"audit details: '{key}' must be a code or id (no spaces, at most 128 chars)")
        return value
    raise InvalidInput(f"audit details: '{key}' has a value of type {type(value).__name__}")


def _value(key: str, value: object, depth: int) -> object:
    if isinstance(value, list | tuple):
        return [_scalar(key, v) for v in value]
    if isinstance(value, Mapping):
        if depth > 0:
            raise InvalidInput(f"audit details: '{key}' nests too deep")
        return {_check_key(k, f"{key}."): _value(k, v, depth + 1) for k, v in value.items()}
    return _scalar(key, value)


def clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """The de-identified copy of ``details`` (ages above 89 as "90+"); raises InvalidInput otherwise."""
    return {_check_key(k, ""): _value(k, v, 0) for k, v in details.items()}


def _check(pattern: re.Pattern[str], value: str | None, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not pattern.match(value)):
        raise InvalidInput(f"audit event: {what} is not a valid {what}")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One decision or action to record. Validated on construction; ``details`` is de-identified."""

    event_type: str
    actor_role: str
    actor_id: str | None = None
    patient_ref: str | None = None
    nudge_id: str | None = None
    decision: str | None = None
    rule_ids: tuple[str, ...] = ()
    ruleset_digest: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event_type not in _EVENT_TYPES:
            raise InvalidInput(f"audit event: unknown event_type '{self.event_type}'")
        if self.actor_role not in _ACTOR_ROLES:
            raise InvalidInput(f"audit event: unknown actor_role '{self.actor_role}'")
        _check(_ACTOR, self.actor_id, "actor_id")
        _check(_SURROGATE, self.patient_ref, "patient_ref")
        _check(_NUDGE, self.nudge_id, "nudge_id")
        _check(_DECISION, self.decision, "decision")
        _check(_DIGEST, self.ruleset_digest, "ruleset_digest")
        rule_ids = tuple(self.rule_ids)
        for rule in rule_ids:
            _check(_RULE, rule, "rule_id")
        object.__setattr__(self, "event_type", str(self.event_type))
        object.__setattr__(self, "actor_role", str(self.actor_role))
        object.__setattr__(self, "rule_ids", rule_ids)
        object.__setattr__(self, "details", MappingProxyType(clean_details(self.details)))
