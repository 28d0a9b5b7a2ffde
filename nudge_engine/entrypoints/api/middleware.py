"""One ASGI middleware around every request: request id, body size limit, denial audit, metrics, access log.

- A request id (the caller's ``X-Request-ID`` when it is a plain token, else a fresh one) is bound
  to every log line of the request via ``structlog.contextvars`` and echoed in the response.
- Bodies above the limit get 413, by ``Content-Length`` up front or while streaming.
- Every refused request under ``/v1/`` (status 400 and above) leaves a ``request_denied`` audit
  record, written before the answer is sent: route *template*, method, status, reason and role,
  never the raw path (which holds the patient's id).
- Latency is observed per route template; one access line is logged per request, with the route
  template only. Unexpected exceptions become a 500 error body here, so no server log ever prints
  their messages (which may quote SQL parameters).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import anyio.to_thread
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nudge_engine.entrypoints.api.errors import DATABASE_UNAVAILABLE, PayloadTooLarge, database_unreachable, error_body
from nudge_engine.entrypoints.api.metrics import ApiMetrics
from nudge_engine.logs import get_logger
from nudge_engine.services.tokens import Denial, Principal, TokenService

_log = get_logger("nudge_engine.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
AUDITED_PREFIX = "/v1/"


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _json_message(status: int, body: dict[str, Any]) -> tuple[Message, Message]:
    payload = json.dumps(body).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


class _Exchange:
    """The state of one request/response as the middleware sees it."""

    def __init__(self, scope: Scope, request_id: str) -> None:
        self.scope = scope
        self.request_id = request_id
        self.state: dict[str, Any] = scope.setdefault("state", {})
        self.status = 500
        self.started = False
        self.received = 0


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, tokens: TokenService, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        ex = _Exchange(scope, given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex)
        began = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = int(message["status"])
                if ex.status >= 400:
                    await self._audit_denial_or_log(ex)
                headers = [*message.get("headers", []), (b"x-request-id", ex.request_id.encode())]
                message = {**message, "headers": headers}
                ex.started = True
            await send(message)

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                ex.received += len(message.get("body", b""))
                if ex.received > self.max_body_bytes:
                    ex.state["denial_reason"] = PayloadTooLarge.code
                    raise PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            return message

        with structlog.contextvars.bound_contextvars(request_id=ex.request_id):
            try:
                length = _header(scope, b"content-length")
                if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                    ex.state["denial_reason"] = PayloadTooLarge.code
                    body = error_body((PayloadTooLarge.code, f"request body exceeds {self.max_body_bytes} bytes"))
                    start, body_message = _json_message(413, body)
                    await send_wrapper(start)
                    await send(body_message)
                else:
                    await self.app(scope, limited_receive, send_wrapper)
            except Exception as exc:
                if ex.started:
                    raise
                await self._fail(ex, exc, send)
            finally:
                self._observe(ex, time.perf_counter() - began)

    async def _fail(self, ex: _Exchange, exc: Exception, send: Send) -> None:
        """An unexpected exception before the answer started: a 500 error body, audited and logged by type only."""
        _log.error("request_failed", error_type=type(exc).__name__, route=route_template(ex.scope))
        ex.state.setdefault("denial_reason", "internal_error")
        ex.status = 500
        try:
            await self._audit_denial(ex)
        except Exception as audit_exc:
            _log.error("denial_audit_failed", error_type=type(audit_exc).__name__)
        start, body_message = _json_message(500, error_body(("internal_error", "internal error")))
        start["headers"].append((b"x-request-id", ex.request_id.encode()))
        await send(start)
        await send(body_message)

    def _observe(self, ex: _Exchange, elapsed: float) -> None:
        route = route_template(ex.scope)
        method = str(ex.scope["method"])
        self.metrics.observe_request(method, route, ex.status, elapsed)
        _log.info("request", method=method, route=route, status=ex.status, duration_ms=round(elapsed * 1000, 2))

    async def _audit_denial_or_log(self, ex: _Exchange) -> None:
        """Audit the refusal; when the refusal is the database being unavailable, its record cannot be stored
        either: the failure is logged and the 503 still goes out. Any other audit failure fails the request."""
        try:
            await self._audit_denial(ex)
        except Exception as audit_exc:
            if ex.state.get("denial_reason") != DATABASE_UNAVAILABLE or not database_unreachable(audit_exc):
                raise
            _log.error("denial_audit_failed", error_type=type(audit_exc).__name__)

    async def _audit_denial(self, ex: _Exchange) -> None:
        if not str(ex.scope.get("path", "")).startswith(AUDITED_PREFIX):
            return
        principal = ex.state.get("principal")
        denial = Denial(
            route=route_template(ex.scope),
            method=str(ex.scope["method"]),
            status=ex.status,
            reason=str(ex.state.get("denial_reason") or "refused"),
            principal=principal if isinstance(principal, Principal) else None,
        )
        await anyio.to_thread.run_sync(self.tokens.record_denial, denial)
