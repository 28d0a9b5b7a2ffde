"""Auditors read the de-identified trail and its integrity over HTTP; nobody else can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from nudge_engine.bootstrap import Container
from nudge_engine.domain.identifiers import is_identifier_key
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.tokens import Role, TokenService
from tests.support.world import make_container, seed_cohort


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient, dict[Role, str]]]:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 30)
    build_cycle(container, worker="t").run()
    tokens = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock, cache_ttl=0)
    secrets = {role: tokens.create(role=role.value, name=f"{role.value} test").secret for role in Role}
    with TestClient(create_app(container, token_cache_ttl=0), raise_server_exceptions=False) as client:
        yield container, client, secrets
    container.dispose()


def _auth(secrets: dict[Role, str], role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {secrets[role]}"}


def test_an_auditor_pages_through_build_decisions_whose_fields_name_no_identifier(
    world: tuple[Container, TestClient, dict[Role, str]],
) -> None:
    _, client, secrets = world
    first = client.get("/v1/audit/events", params={"event_type": "built", "limit": 10},
                       headers=_auth(secrets, Role.AUDITOR))
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["records"]) == 10 and page["next_after_seq"] is not None
    assert all(r["event_type"] == "built" and r["ruleset_digest"].startswith("sha256:") for r in page["records"])
    keys = {k for r in page["records"] for k in (*r, *r["details"])}
    assert not [k for k in keys if is_identifier_key(k)]
    second = client.get("/v1/audit/events", params={"event_type": "built", "after_seq": page["next_after_seq"]},
                        headers=_auth(secrets, Role.AUDITOR))
    assert min(r["seq"] for r in second.json()["records"]) > max(r["seq"] for r in page["records"])


def test_only_auditors_may_read_the_trail(world: tuple[Container, TestClient, dict[Role, str]]) -> None:
    _, client, secrets = world
    for role in (Role.SERVICE, Role.CLINICIAN):
        assert client.get("/v1/audit/events", headers=_auth(secrets, role)).status_code == 403
        assert client.get("/v1/audit/verify", headers=_auth(secrets, role)).status_code == 403
    assert client.get("/v1/audit/verify").status_code == 401


def test_verify_reports_an_intact_trail_and_then_names_the_record_edited_in_the_database(
    world: tuple[Container, TestClient, dict[Role, str]],
) -> None:
    container, client, secrets = world
    ok = client.get("/v1/audit/verify", headers=_auth(secrets, Role.AUDITOR)).json()
    assert ok["ok"] is True and ok["records_checked"] > 30
    with container.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # an attacker with DDL rights disables the guard first
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"))
        conn.execute(text("UPDATE audit_records SET decision = 'deliver' WHERE seq = 7"))
    broken = client.get("/v1/audit/verify", headers=_auth(secrets, Role.AUDITOR)).json()
    assert broken["ok"] is False and broken["first_bad_seq"] == 7
