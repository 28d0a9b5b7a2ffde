"""Who may call what: a role × endpoint × ownership matrix generated from the app's own route table.

A route under /v1 without a role declaration fails here (and the app factory refuses to start).
Every denied request under /v1 leaves a ``request_denied`` audit record with the route template and
role, never the patient's id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.domain.errors import ConfigurationError
from nudge_engine.entrypoints.api import ROUTERS, create_app
from nudge_engine.entrypoints.api.auth import declared_roles, require_role, route_table, undeclared_routes
from nudge_engine.privacy.keys import new_key_text
from nudge_engine.services.tokens import Role, TokenService
from tests.e2e.api.kit import WATER, Clock, audit_records, bundle, seed_ready, surrogate_of


def _offline_app() -> FastAPI:
    settings = Settings(database_url="sqlite://", master_keys=f"v1:{new_key_text()}", index_key=new_key_text(),
                        audit_signing_key=new_key_text())
    return create_app(Container(settings))


ROUTES: list[tuple[str, str, frozenset[Role]]] = [
    (method, path, roles or frozenset())
    for method, path, roles in route_table(_offline_app().routes)
    if path.startswith("/v1/")
]
OWN, OTHER = "app-ada", "app-bo"
MISSING = "app-nobody"

# Example requests per route: path parameters and bodies for the "own", "other's" and "missing" cases.
PARAMS: dict[str, dict[str, str]] = {"patient_id": {"own": OWN, "other": OWN, "missing": MISSING}}
EVENT = {"type": "opened", "nudge_id": WATER.id, "occurred_at": "2026-03-10T11:00:00Z"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/patients/{patient_id}/events"): {"own": EVENT, "other": {**EVENT, "nudge_id": "sleep-wind-down"},
                                                   "missing": EVENT},
    ("PUT", "/v1/patients/{patient_id}/context"): {"own": bundle(OWN), "other": bundle(OTHER),
                                                   "missing": bundle(MISSING)},
}
# What the service role gets for each case (other's object answers like a missing one).
OWNERSHIP: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/v1/patients/{patient_id}/next-nudge"): {"own": 200, "missing": 404},
    ("POST", "/v1/patients/{patient_id}/events"): {"own": 201, "other": 404, "missing": 404},
    ("PUT", "/v1/patients/{patient_id}/context"): {"own": 200, "other": 422, "missing": 201},
}


def _request(client: TestClient, method: str, path: str, case: str, headers: dict[str, str]) -> int:
    url = path
    for name, values in PARAMS.items():
        url = url.replace("{" + name + "}", values.get(case, values["missing"]))
    url = url.replace("{", "").replace("}", "")  # other helpers' parameters: a value that names nothing
    body = BODIES.get((method, path), {}).get(case)
    return client.request(method, url, json=body, headers=headers).status_code


def test_every_v1_route_declares_the_roles_it_admits() -> None:
    assert ROUTES, "no /v1 routes found"
    assert undeclared_routes(_offline_app().routes) == []
    assert all(roles for _, _, roles in ROUTES)


def test_a_role_declared_when_a_router_is_included_counts() -> None:
    app = _offline_app()
    extra = APIRouter(prefix="/v1/extra")

    @extra.get("/thing")
    def thing() -> dict[str, str]:
        return {}

    app.include_router(extra, dependencies=[Depends(require_role(Role.ADMIN))])
    assert ("GET", "/v1/extra/thing", frozenset({Role.ADMIN})) in route_table(app.routes)


def test_a_router_with_an_undeclared_route_stops_the_app_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    careless = APIRouter(prefix="/v1/careless")

    @careless.get("/thing")
    def thing() -> dict[str, str]:
        return {}

    monkeypatch.setattr("nudge_engine.entrypoints.api.app.ROUTERS", (*ROUTERS, careless))
    with pytest.raises(ConfigurationError, match="GET /v1/careless/thing"):
        _offline_app()


def test_a_route_requiring_two_roles_admits_only_their_intersection() -> None:
    router = APIRouter(dependencies=[Depends(require_role(Role.SERVICE, Role.ADMIN))])

    @router.get("/v1/x", dependencies=[Depends(require_role(Role.ADMIN))])
    def x() -> None:
        return None

    route = next(r for r in router.routes if isinstance(r, APIRoute))
    assert declared_roles(route) == frozenset({Role.ADMIN})


@pytest.fixture
def world(client: TestClient, container: Container, service_headers: dict[str, str],
          enrol: Callable[..., None]) -> None:
    """Ada has a served nudge (and a ready one); Bo has one served to him only."""
    enrol(OWN)
    enrol(OTHER)
    seed_ready(container, surrogate_of(container, OTHER), WATER.__class__("sleep-wind-down", "sleep"))
    assert client.get(f"/v1/patients/{OTHER}/next-nudge", headers=service_headers).status_code == 200
    seed_ready(container, surrogate_of(container, OWN), WATER)
    assert client.get(f"/v1/patients/{OWN}/next-nudge", headers=service_headers).status_code == 200
    seed_ready(container, surrogate_of(container, OWN), WATER)


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_each_role_gets_exactly_the_allowed_set_of_endpoints(
    method: str, path: str, roles: frozenset[Role], client: TestClient, container: Container,
    token_service: TokenService, tokens: dict[Role, str], clock: Clock, world: None,
) -> None:
    expired = token_service.create(role="service", name="expiring", expires_days=1).secret
    revoked_token = token_service.create(role="service", name="revoked")
    token_service.revoke(revoked_token.id)
    clock.advance(days=2)
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "garbage": {"Authorization": "Bearer ne_not-a-token"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "revoked": {"Authorization": f"Bearer {revoked_token.secret}"},
        **{role.value: {"Authorization": f"Bearer {secret}"} for role, secret in tokens.items()},
    }
    seen: dict[str, str] = {}
    for name, headers in credentials.items():
        status = _request(client, method, path, "missing", headers)
        seen[name] = "unauthenticated" if status == 401 else "forbidden" if status == 403 else "admitted"
    expected = {name: "unauthenticated" for name in ("none", "garbage", "basic", "expired", "revoked")}
    expected.update({role.value: "admitted" if role in roles else "forbidden" for role in Role})
    assert seen == expected


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_another_patients_object_answers_like_a_missing_one(
    method: str, path: str, roles: frozenset[Role], client: TestClient, tokens: dict[Role, str], world: None,
) -> None:
    cases = OWNERSHIP.get((method, path))
    if cases is None:
        pytest.skip("ownership cases for this route belong to the router's own tests")
    role = Role.SERVICE if Role.SERVICE in roles else sorted(roles)[0]
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    seen = {case: _request(client, method, path, case, headers) for case in cases}
    assert seen == cases


def test_denied_requests_are_audited_with_route_template_and_role_but_no_patient_id(
    client: TestClient, container: Container, tokens: dict[Role, str]
) -> None:
    client.get(f"/v1/patients/{OWN}/next-nudge")
    client.get(f"/v1/patients/{OWN}/next-nudge", headers={"Authorization": f"Bearer {tokens[Role.AUDITOR]}"})

    denied = [r for r in audit_records(container) if r.event_type == "request_denied"]
    assert [(r.actor_role, r.details["role"], r.details["status"], r.details["reason"]) for r in denied] == [
        ("system", "anonymous", 401, "missing"),
        ("auditor", "auditor", 403, "role_not_admitted"),
    ]
    assert {r.details["route"] for r in denied} == {"/v1/patients/:patient_id/next-nudge"}
    assert all(OWN not in repr(tuple(r)) for r in audit_records(container))


def test_a_revoked_token_stops_working(
    client: TestClient, token_service: TokenService, clock: Clock, container: Container
) -> None:
    issued = token_service.create(role="service", name="app backend")
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert client.get(f"/v1/patients/{MISSING}/next-nudge", headers=headers).status_code == 404
    token_service.revoke(issued.id)
    assert client.get(f"/v1/patients/{MISSING}/next-nudge", headers=headers).status_code == 401
    clock.advance(minutes=1)
    assert client.get(f"/v1/patients/{MISSING}/next-nudge", headers=headers).status_code == 401
    assert timedelta(0) < timedelta(minutes=1)  # the clock moved; the token stays revoked
