"""The page side of authentication: who is logged in, the CSRF check, rendering, form bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clinical_review.accounts import Clinician
from clinical_review.auth import LOGIN_COOKIE, SESSION_COOKIE, SessionClaims, same_origin
from clinical_review.wiring import ReviewContext

MAX_FORM_FIELDS = 50
PURPOSE = "session"


@dataclass(frozen=True, slots=True)
class PageSession:
    clinician: Clinician
    claims: SessionClaims
    csrf: str


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (first value wins); empty otherwise."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS):
        fields.setdefault(key, value)
    return fields


def current_session(request: Request, ctx: ReviewContext) -> PageSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    claims = ctx.signer.read(cookie)
    if cookie is None or claims is None:
        return None
    clinician = ctx.accounts.current(claims.account_id)
    if clinician is None or not ctx.signer.valid(cookie, claims, clinician.password_epoch, ctx.service.now()):
        return None
    return PageSession(clinician, claims, ctx.signer.csrf_token(PURPOSE, claims.nonce))


def csrf_ok(request: Request, ctx: ReviewContext, fields: dict[str, str], session: PageSession | None) -> bool:
    """The form's token matches the session (or the log-in cookie), and the Origin, if sent, is this site."""
    if not same_origin(request.headers.get("origin"), request.headers.get("host"), request.url.scheme):
        return False
    given = fields.get("csrf_token")
    if session is not None:
        return ctx.signer.csrf_ok(PURPOSE, session.claims.nonce, given)
    return ctx.signer.csrf_ok("login", request.cookies.get(LOGIN_COOKIE), given)


def refresh(response: Response, ctx: ReviewContext, session: PageSession) -> Response:
    """Slide the idle timeout: re-issue the cookie with the same start and nonce."""
    cookie = ctx.signer.issue(session.clinician.account_id, session.clinician.password_epoch, ctx.service.now(),
                              started=session.claims.started, nonce=session.claims.nonce)
    response.set_cookie(SESSION_COOKIE, cookie, **ctx.signer.policy.cookie_args(None))  # type: ignore[arg-type]
    return response


def render(ctx: ReviewContext, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    html = ctx.templates.get_template(name).render(**values)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would make browsers send "Origin: null"
    return response


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(f"/review/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path under /review/ (no scheme, no host, no backslash tricks) is followed after log-in."""
    if value and value.startswith("/review/") and "//" not in value and "\\" not in value:
        return value
    return "/review/"
