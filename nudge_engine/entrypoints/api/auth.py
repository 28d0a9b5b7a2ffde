"""Bearer-token authentication and role declarations.

Every route under ``/v1`` declares who may call it with ``Depends(require_role(Role.X, ...))``;
:func:`undeclared_routes` lists the ones that do not, and the app factory refuses to start while
any exist (deny by default). The dependency authenticates the token, checks the role, and leaves
the principal on ``request.state`` so that a denied request is audited with its role.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from nudge_engine.entrypoints.api.errors import Forbidden, Unauthenticated
from nudge_engine.services.tokens import AuthFailure, Principal, Role, TokenService

__all__ = [
    "Principal", "Role", "RoleRequirement", "declared_roles", "require_role", "route_table", "undeclared_routes",
]

bearer = HTTPBearer(auto_error=False, description="API token from `nudge-engine tokens create`")
PROTECTED_PREFIX = "/v1/"


class RoleRequirement:
    """A FastAPI dependency admitting only tokens of the given roles; returns the :class:`Principal`."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = frozenset(roles)
        if not self.roles:
            raise ValueError("a route must admit at least one role")

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        # async: no thread hop per request; a token not in the short-lived cache is looked up in a thread.
        if credentials is None:
            request.state.denial_reason = AuthFailure.MISSING.value
            raise Unauthenticated()
        tokens: TokenService = request.app.state.services.tokens
        result = tokens.cached(credentials.credentials)
        if result is None:
            result = await anyio.to_thread.run_sync(tokens.authenticate, credentials.credentials)
        if isinstance(result, AuthFailure):
            request.state.denial_reason = result.value
            raise Unauthenticated()
        request.state.principal = result
        if result.role not in self.roles:
            request.state.denial_reason = "role_not_admitted"
            raise Forbidden("this token's role may not call this route")
        return result

    def __repr__(self) -> str:
        return f"require_role({', '.join(sorted(r.value for r in self.roles))})"


def require_role(*roles: Role) -> RoleRequirement:
    """Declare the roles a route admits: ``Depends(require_role(Role.SERVICE))``."""
    return RoleRequirement(roles)


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _roles_of(dependant: object) -> frozenset[Role] | None:
    if not isinstance(dependant, Dependant):
        return None
    found: frozenset[Role] | None = None
    for dep in _walk(dependant):
        if isinstance(dep.call, RoleRequirement):  # several requirements all apply: intersect
            found = dep.call.roles if found is None else found & dep.call.roles
    return found


def declared_roles(route: BaseRoute) -> frozenset[Role] | None:
    """The roles a route admits (every requirement must pass), or None when it declares none."""
    return _roles_of(getattr(route, "dependant", None))


def route_table(routes: Sequence[BaseRoute]) -> list[tuple[str, str, frozenset[Role] | None]]:
    """``(method, path, roles)`` of every route, included routers flattened, include-time dependencies counted."""
    table: list[tuple[str, str, frozenset[Role] | None]] = []
    for ctx in iter_route_contexts(routes):
        path = ctx.path or ""
        roles = _roles_of(getattr(ctx, "dependant", None))
        table.extend((method, path, roles) for method in sorted(ctx.methods or {"*"}))
    return sorted(table, key=lambda row: (row[1], row[0]))


def undeclared_routes(routes: Sequence[BaseRoute]) -> list[str]:
    """``METHOD path`` of every route under ``/v1/`` without a role declaration (mounted apps included)."""
    return [
        f"{method} {path}" for method, path, roles in route_table(routes)
        if path.startswith(PROTECTED_PREFIX) and roles is None
    ]
