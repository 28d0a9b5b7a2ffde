"""Fixtures: the API over a fresh migrated database (SQLite and PostgreSQL) with memorable session rules.

Walking nudges ``walk-10min`` and ``walk-brisk-20`` share the behaviour ``walking``; ``onb-welcome``
is followed up by ``onb-set-goal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.personalization.session import SessionRules
from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
from nudge_engine.services.tokens import Role, TokenService
from nudge_engine.tracking.settings import DataSettings
from tests.e2e.api.kit import Clock, FakeGuardrails, bundle, make_container

RULES = SessionRules(
    behaviour_of_nudge={"walk-10min": "walking", "walk-brisk-20": "walking"},
    behaviour_of_activity={"walk": "walking"},
    follow_ups={"onb-welcome": ("onb-set-goal",)},
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Container]:
    c = make_container(database_url, tmp_path, clock)
    yield c
    c.dispose()


@pytest.fixture
def data() -> DataSettings:
    return DataSettings()


@pytest.fixture
def app(container: Container, data: DataSettings) -> FastAPI:
    return create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                      nudges=StoredNudges(), token_cache_ttl=0, data=data, session_rules=RULES)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def tokens(container: Container) -> dict[Role, str]:
    service = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock, cache_ttl=0)
    return {role: service.create(role=role.value, name=f"{role.value} test").secret for role in Role}


@pytest.fixture
def service_headers(tokens: dict[Role, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[Role.SERVICE]}"}


@pytest.fixture
def clinician_headers(tokens: dict[Role, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[Role.CLINICIAN]}"}


@pytest.fixture
def enrol(client: TestClient, service_headers: dict[str, str]) -> Callable[[str], None]:
    def do(app_id: str) -> None:
        res = client.put(f"/v1/patients/{app_id}/context", json=bundle(app_id), headers=service_headers)
        assert res.status_code in (200, 201), res.text

    return do
