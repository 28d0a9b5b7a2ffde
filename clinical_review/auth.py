"""Clinician sessions in signed cookies, and CSRF tokens for every form.

A session cookie holds the account's surrogate id, when the session started, when it was last
used, a random nonce, and an HMAC-SHA256 over those and the account's *password epoch* (a hash of
its password hash): a new password, a disabled or locked account ends every session at once. The
cookie is ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` whenever configured (always in
production); sessions end after :attr:`SessionPolicy.idle` without use or :attr:`SessionPolicy.absolute`
after log-in. Nothing about the clinician but the surrogate id is in it.

CSRF: every form carries a synchroniser token, ``HMAC(key, purpose | session nonce)``; the log-in
form's is bound to a random pre-session cookie. A POST without the right token is refused (403),
and so is one whose ``Origin`` header names another site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "nudge_review_session"
LOGIN_COOKIE = "nudge_review_login"
COOKIE_PATH = "/review"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    secure: bool
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=10)

    def cookie_args(self, max_age: int | None) -> dict[str, object]:
        return {"httponly": True, "samesite": "strict", "secure": self.secure, "path": COOKIE_PATH,
                "max_age": max_age}


@dataclass(frozen=True, slots=True)
class SessionClaims:
    account_id: str
    started: int
    seen: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(master: bytes, label: str = "clinical_review/session/v1") -> bytes:
    """A key for sessions only, derived from a configured secret with its own label."""
    return hmac.new(master, label.encode(), hashlib.sha256).digest()


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens."""

    def __init__(self, key: bytes, policy: SessionPolicy) -> None:
        self._key = key
        self.policy = policy

    def _mac(self, payload: str, epoch: str) -> str:
        return _b64(hmac.new(self._key, f"{payload}|{epoch}".encode(), hashlib.sha256).digest())

    def issue(self, account_id: str, epoch: str, now: datetime, *, started: int | None = None,
              nonce: str | None = None) -> str:
        stamp = int(now.timestamp())
        body = {"a": account_id, "s": started or stamp, "u": stamp, "n": nonce or secrets.token_urlsafe(16)}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, epoch)}"

    def read(self, cookie: str | None) -> SessionClaims | None:
        """The claims of a well-formed cookie, not yet checked against the account (see :meth:`valid`)."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 512:
            return None
        payload, _ = cookie.split(".")
        try:
            body = json.loads(_unb64(payload))
            return SessionClaims(str(body["a"]), int(body["s"]), int(body["u"]), str(body["n"]))
        except (ValueError, KeyError, TypeError):
            return None

    def valid(self, cookie: str, claims: SessionClaims, epoch: str, now: datetime) -> bool:
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload, epoch)):
            return False
        stamp = now.timestamp()
        return (stamp - claims.seen <= self.policy.idle.total_seconds()
                and stamp - claims.started <= self.policy.absolute.total_seconds())

    def csrf_token(self, purpose: str, nonce: str) -> str:
        return _b64(hmac.new(self._key, f"csrf|{purpose}|{nonce}".encode(), hashlib.sha256).digest())

    def csrf_ok(self, purpose: str, nonce: str | None, given: str | None) -> bool:
        if not nonce or not given:
            return False
        return hmac.compare_digest(self.csrf_token(purpose, nonce), given)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(16)


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether an ``Origin`` header (when a browser sent one) names this very site."""
    if origin is None:
        return True
    return host is not None and origin in (f"{scheme}://{host}", f"https://{host}", f"http://{host}")
