"""Fixtures shared by the API end-to-end suites: a container over a fresh migrated database (SQLite and
PostgreSQL), a test client of the suite's own ``app`` fixture, tokens of every role, and enrolment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from nudge_engine.services.tokens import Role, TokenService
from tests.e2e.api.kit import Clock, bundle, make_container


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Container]:
    c = make_container(database_url, tmp_path, clock)
    yield c
    c.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def token_service(container: Container) -> TokenService:
    return TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock, cache_ttl=0)


@pytest.fixture
def tokens(token_service: TokenService) -> dict[Role, str]:
    """One bearer token per role."""
    return {role: token_service.create(role=role.value, name=f"{role.value} test").secret for role in Role}


@pytest.fixture
def service_headers(tokens: dict[Role, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[Role.SERVICE]}"}


@pytest.fixture
def clinician_headers(tokens: dict[Role, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[Role.CLINICIAN]}"}


@pytest.fixture
def enrol(client: TestClient, service_headers: dict[str, str]) -> Callable[..., None]:
    """Enrol a patient through the API, optionally with conditions."""

    def do(app_id: str, *resources: dict[str, object]) -> None:
        res = client.put(f"/v1/patients/{app_id}/context", json=bundle(app_id, *resources), headers=service_headers)
        assert res.status_code in (200, 201), res.text

    return do
