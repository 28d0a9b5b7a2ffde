"""The HTTP mapping of every error, in one place, and the one error body shape.

Every error answer is ``{"detail": [{"code": "...", "msg": "..."}]}``: typed engine errors,
request validation, authentication and authorisation, unknown routes (404), wrong methods (405),
oversized bodies (413), unsupported media types (415), an unavailable database (503: nothing was
stored, a retry may succeed) and unexpected failures (500). Messages name fields and ids,
never patient data, and are never logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nudge_engine.domain.errors import (
    Busy,
    ConfigurationError,
    Conflict,
    IntegrityError,
    InvalidInput,
    InvalidResource,
    InvalidRuleSet,
    NotFound,
    NudgeEngineError,
)
from nudge_engine.logs import get_logger

_log = get_logger(__name__)


class ErrorItem(BaseModel):
    code: str
    msg: str


class ErrorBody(BaseModel):
    """The one error body shape of the API."""

    detail: list[ErrorItem]


class ApiError(StarletteHTTPException):
    """An HTTP-level refusal with a stable error code (raised by auth, size and media-type checks)."""

    code = "error"
    status = 400

    def __init__(self, msg: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=self.status, detail=msg, headers=dict(headers) if headers else None)


class Unauthenticated(ApiError):
    """No valid bearer token (missing, malformed, unknown, expired or revoked)."""

    code = "unauthenticated"
    status = 401

    def __init__(self, msg: str = "a valid bearer token is required") -> None:
        super().__init__(msg, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """The token's role is not admitted by the route."""

    code = "forbidden"
    status = 403


class PayloadTooLarge(ApiError):
    """The request body exceeds the configured limit."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ApiError):
    """The request body's media type is not accepted by the route."""

    code = "unsupported_media_type"
    status = 415


# Typed engine errors -> (status, code). Order matters: subclasses first.
ENGINE_ERRORS: tuple[tuple[type[NudgeEngineError], int, str], ...] = (
    (InvalidResource, 422, "invalid_resource"),
    (InvalidInput, 422, "invalid_input"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Busy, 503, "busy"),
    (InvalidRuleSet, 503, "ruleset_unavailable"),
    (ConfigurationError, 503, "misconfigured"),
    (IntegrityError, 500, "integrity_error"),
)
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    500: "internal_error",
    503: "unavailable",
}
DESCRIPTIONS = {
    401: "Missing, unknown, expired or revoked bearer token",
    403: "The token's role may not call this route",
    404: "No such patient or object (another patient's object answers the same)",
    409: "Conflict with the object's state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input; the message names the field (and FHIR resource)",
    503: "Not ready, busy with concurrent writers, or the database unavailable (nothing stored; retry)",
}


DATABASE_UNAVAILABLE = "database_unavailable"


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is the database unavailable (a refused or lost connection, a server shutting down, a
    transaction the server gave up: PEP 249's operational errors) rather than a fault of the request or code."""
    return isinstance(exc, DBAPIError) and (
        isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    )


def error_body(*items: tuple[str, str]) -> dict[str, Any]:
    return {"detail": [{"code": code, "msg": msg} for code, msg in items]}


def error_response(status: int, *items: tuple[str, str], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(*items), status_code=status, headers=dict(headers) if headers else None)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, all with :class:`ErrorBody`."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS.get(s, "Error")} for s in statuses}


def map_engine_error(exc: NudgeEngineError) -> tuple[int, str]:
    for kind, status, code in ENGINE_ERRORS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def _note_reason(request: Request, code: str) -> None:
    """Keep the most specific reason for the denial audit (auth sets its own before raising)."""
    if getattr(request.state, "denial_reason", None) is None:
        request.state.denial_reason = code


def _location(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into :class:`ErrorBody`."""

    async def on_engine_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NudgeEngineError)
        status, code = map_engine_error(exc)
        _note_reason(request, code)
        if status >= 500:
            _log.error("engine_error", code=code, error_type=type(exc).__name__)
            return error_response(status, (code, "internal error"))
        return error_response(status, (code, str(exc)))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _note_reason(request, "invalid_input")
        items = [("invalid_input", f"{_location(err.get('loc', ()))}: {err.get('msg', 'invalid')}")
                 for err in exc.errors()]
        return error_response(422, *(items or [("invalid_input", "invalid request")]))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = exc.code if isinstance(exc, ApiError) else HTTP_CODES.get(exc.status_code, "error")
        _note_reason(request, code)
        msg = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, (code, msg), headers=exc.headers)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            raise exc  # a fault of ours: the 500 of an unexpected failure
        _note_reason(request, DATABASE_UNAVAILABLE)
        _log.error(DATABASE_UNAVAILABLE, error_type=type(exc).__name__)
        return error_response(503, (DATABASE_UNAVAILABLE, "the database is unavailable; nothing was stored, retry"))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("unhandled_error", error_type=type(exc).__name__)
        return error_response(500, ("internal_error", "internal error"))

    app.add_exception_handler(NudgeEngineError, on_engine_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
