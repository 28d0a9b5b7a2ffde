"""Clinician accounts: argon2id password hashes, log-in with lock-out, unlock, the demo account.

After :data:`MAX_FAILURES` wrong passwords in a row an account is locked for :data:`LOCK_FOR`;
while locked, no password is even checked. Unknown usernames cost the same argon2 verification as
known ones, and every refusal answers alike, so the log-in form does not tell which accounts exist.
Failures are audited (``login_failed``) with the account's surrogate id and a reason code.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from nudge_engine.adapters.orm import ClinicianAccountRow, new_id
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.errors import Conflict, InvalidInput, NotFound
from nudge_engine.logs import get_logger

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.bootstrap import Container

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
DEMO_USERNAME = "demo-clinician"
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_log = get_logger(__name__)


class LoginFailure(StrEnum):
    UNKNOWN = "unknown_account"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason code
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Clinician:
    """A logged-in clinician: surrogate id, and a fingerprint of the password hash that binds sessions to it."""

    account_id: str
    username: str
    password_epoch: str


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not 3 <= len(name) <= 64 or not set(name) <= _USERNAME_CHARS:
        raise InvalidInput("username: 3 to 64 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def password_epoch(password_hash: str) -> str:
    """Changes whenever the password does: sessions signed with it end with a new password."""
    import hashlib

    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class ClinicianAccounts:
    """Create, unlock and authenticate clinician accounts (one unit of work each)."""

    def __init__(
        self, *, uow_factory: Callable[[], UnitOfWork], audit: AuditTrail, clock: Callable[[], datetime],
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._audit = audit
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def create(self, username: str, password: str) -> str:
        name, hashed = check_username(username), self._hasher.hash(check_password(password))
        with self._uow_factory() as uow:
            if uow.session.scalar(select(ClinicianAccountRow.id).where(ClinicianAccountRow.username == name)):
                raise Conflict(f"clinician account '{name}' already exists")
            account_id = new_id()
            uow.session.add(ClinicianAccountRow(id=account_id, username=name, password_hash=hashed, failed_attempts=0,
                                                created_at=self._clock()))
            uow.commit()
        return account_id

    def set_password(self, username: str, password: str, *, create: bool = False) -> str:
        """Set (or, with ``create``, create the account with) a password; unlocks the account."""
        name, hashed = check_username(username), self._hasher.hash(check_password(password))
        with self._uow_factory() as uow:
            row = uow.session.scalar(select(ClinicianAccountRow).where(ClinicianAccountRow.username == name))
            if row is None:
                if not create:
                    raise NotFound(f"no clinician account '{name}'")
                row = ClinicianAccountRow(id=new_id(), username=name, created_at=self._clock())
                uow.session.add(row)
            row.password_hash, row.failed_attempts, row.locked_until = hashed, 0, None
            account_id = row.id
            uow.commit()
        return account_id

    def unlock(self, username: str) -> None:
        with self._uow_factory() as uow:
            row = uow.session.scalar(select(ClinicianAccountRow).where(ClinicianAccountRow.username == check_username(
                username)))
            if row is None:
                raise NotFound(f"no clinician account '{username.strip().lower()[:64]}'")
            row.failed_attempts, row.locked_until = 0, None
            uow.commit()

    def current(self, account_id: str) -> Clinician | None:
        """The account behind a session, if it still exists, is enabled and not locked."""
        with self._uow_factory() as uow:
            row = uow.session.get(ClinicianAccountRow, account_id)
            if row is None or row.disabled_at is not None or self._locked(row):
                return None
            return Clinician(row.id, row.username, password_epoch(row.password_hash))

    def authenticate(self, username: str, password: str) -> Clinician | LoginFailure:
        now = self._clock()
        try:
            name = check_username(username)
        except InvalidInput:
            name = ""
        with self._uow_factory() as uow:
            row = uow.session.scalar(
                select(ClinicianAccountRow).where(ClinicianAccountRow.username == name).with_for_update()
            ) if name else None
            outcome = self._check(row, password[:MAX_PASSWORD], now)
            if isinstance(outcome, LoginFailure):
                self._audit.append(uow.session, [AuditEvent(
                    EventType.LOGIN_FAILED, "clinician", actor_id=row.id if row is not None else None,
                    details={"reason": outcome.value, "locked": row is not None and self._locked(row, now)},
                )], now=now)
            uow.commit()
        if isinstance(outcome, LoginFailure):
            _log.info("clinician_login_failed", reason=outcome.value)
        return outcome

    def _check(self, row: ClinicianAccountRow | None, password: str, now: datetime) -> Clinician | LoginFailure:
        if row is None:
            self._verify(self._dummy, password)  # the same work as for a real account
            return LoginFailure.UNKNOWN
        if row.disabled_at is not None:
            return LoginFailure.DISABLED
        if self._locked(row, now):
            return LoginFailure.LOCKED
        if not self._verify(row.password_hash, password):
            row.failed_attempts = (row.failed_attempts or 0) + 1
            if row.failed_attempts >= MAX_FAILURES:
                row.failed_attempts, row.locked_until = 0, now + LOCK_FOR
            return LoginFailure.WRONG_PASSWORD
        row.failed_attempts, row.locked_until = 0, None
        if self._hasher.check_needs_rehash(row.password_hash):
            row.password_hash = self._hasher.hash(password)
        return Clinician(row.id, row.username, password_epoch(row.password_hash))

    def _locked(self, row: ClinicianAccountRow, now: datetime | None = None) -> bool:
        return row.locked_until is not None and row.locked_until > (now or self._clock())

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def ensure_demo_clinician(container: Container) -> tuple[str, str]:
    """The demo clinician account with a fresh generated password (stored only hashed; print it once)."""
    password = secrets.token_urlsafe(15)
    ClinicianAccounts(uow_factory=container.uow, audit=container.audit, clock=container.clock).set_password(
        DEMO_USERNAME, password, create=True
    )
    return DEMO_USERNAME, password
