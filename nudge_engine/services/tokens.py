"""API tokens and access decisions: issue, revoke, list, authenticate, and audit denied requests.

A token is ``ne_`` followed by 32 random bytes (base64url). It is shown once, when created; only
its SHA-256 is stored. Authentication looks the hash up and checks expiry and revocation. A short
in-process cache of *successful* look-ups keeps the hot path to one dictionary read; its time to
live bounds how long a revoked token can still be used in a running server (default 5 seconds).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select

from nudge_engine.adapters.orm import ApiTokenRow, new_id
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail

TOKEN_PREFIX = "ne_"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES = 32
MAX_NAME = 100


class Role(StrEnum):
    """Who may call what. Each API route declares the roles it admits; nothing else gets in."""

    SERVICE = "service"
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    ADMIN = "admin"


class AuthFailure(StrEnum):
    """Why a bearer credential was refused (recorded in the audit trail of denied requests)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's surrogate id and its role."""

    token_id: str
    role: Role
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token. ``secret`` is shown once and never stored."""

    id: str
    name: str
    role: Role
    secret: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What ``tokens list`` shows: never the secret, never its hash."""

    id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Denial:
    """One refused request, described without any patient identifier."""

    route: str
    method: str
    status: int
    reason: str
    principal: Principal | None = None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _route_code(template: str) -> str:
    """``/v1/patients/{patient_id}/events`` -> ``/v1/patients/:patient_id/events`` (an audit code)."""
    return template.replace("{", ":").replace("}", "")[:128]


class TokenService:
    """Issues, revokes, lists and checks API tokens; records denied requests in the audit trail."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        audit: AuditTrail,
        clock: Callable[[], datetime],
        cache_ttl: float = 5.0,
    ) -> None:
        self._uow_factory = uow_factory
        self._audit = audit
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def create(self, *, role: str, name: str, expires_days: int | None = None) -> IssuedToken:
        """A new token for ``role``; the secret is returned once and only its hash is stored."""
        try:
            parsed_role = Role(role)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidInput(f"--role: unknown role '{role}' (expected one of {allowed})") from None
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"--name: must be 1 to {MAX_NAME} characters")
        if expires_days is not None and expires_days < 1:
            raise InvalidInput("--expires-days: must be at least 1")
        now = self._clock()
        expires_at = now + timedelta(days=expires_days) if expires_days is not None else None
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        token_id = new_id()
        with self._uow_factory() as uow:
            uow.session.add(
                ApiTokenRow(
                    id=token_id, name=name, role=parsed_role.value, token_hash=hash_token(secret),
                    created_at=now, expires_at=expires_at, revoked_at=None, last_used_at=None,
                )
            )
            details: dict[str, object] = {"credential_id": token_id, "role": parsed_role.value}
            if expires_days is not None:
                details["valid_days"] = expires_days
            self._audit.append(
                uow.session, [AuditEvent(EventType.TOKEN_CREATED, "admin", details=details)], now=now
            )
            uow.commit()
        return IssuedToken(token_id, name, parsed_role, secret, expires_at)

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token by id (revoking twice keeps the first revocation time)."""
        now = self._clock()
        with self._uow_factory() as uow:
            row = uow.session.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"token {token_id}: no such token")
            if row.revoked_at is None:
                row.revoked_at = now
                self._audit.append(
                    uow.session,
                    [AuditEvent(EventType.TOKEN_REVOKED, "admin", details={"credential_id": token_id})],
                    now=now,
                )
            info = _info(row)
            uow.commit()
        with self._lock:
            self._cache.clear()
        return info

    def list_tokens(self) -> list[TokenInfo]:
        with self._uow_factory() as uow:
            rows = uow.session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id))
            return [_info(r) for r in rows]

    def cached(self, secret: str) -> Principal | AuthFailure | None:
        """The answer without touching the database (a malformed token, or a recent successful look-up)."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            return AuthFailure.MALFORMED
        hit = self._cache.get(hash_token(secret))
        if hit is None or hit[0] <= time.monotonic():
            return None
        principal = hit[1]
        if principal.expires_at is not None and principal.expires_at <= self._clock():
            return None
        return principal

    def authenticate(self, secret: str) -> Principal | AuthFailure:
        """The principal behind ``secret``, or why it is refused."""
        known = self.cached(secret)
        if known is not None:
            return known
        digest = hash_token(secret)
        now = self._clock()
        tick = time.monotonic()
        with self._uow_factory() as uow:
            row = uow.session.execute(
                select(ApiTokenRow.id, ApiTokenRow.role, ApiTokenRow.expires_at, ApiTokenRow.revoked_at).where(
                    ApiTokenRow.token_hash == digest
                )
            ).first()
        if row is None:
            return AuthFailure.UNKNOWN
        if row.revoked_at is not None:
            return AuthFailure.REVOKED
        if row.expires_at is not None and row.expires_at <= now:
            return AuthFailure.EXPIRED
        try:
            principal = Principal(row.id, Role(row.role), row.expires_at)
        except ValueError:
            return AuthFailure.UNKNOWN
        if self._cache_ttl > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (tick + self._cache_ttl, principal)
        return principal

    def record_denial(self, denial: Denial) -> None:
        """One ``request_denied`` audit record: route template, method, status, reason, role; no patient id."""
        now = self._clock()
        principal = denial.principal
        details: Mapping[str, object] = {
            "route": _route_code(denial.route),
            "method": denial.method,
            "status": denial.status,
            "reason": denial.reason,
            "role": principal.role.value if principal else "anonymous",
        }
        event = AuditEvent(
            EventType.REQUEST_DENIED,
            principal.role.value if principal else "system",
            actor_id=principal.token_id if principal else None,
            details=details,
        )
        with self._uow_factory() as uow:
            self._audit.append(uow.session, [event], now=now)
            uow.commit()


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, Role(row.role), row.created_at, row.expires_at, row.revoked_at)
