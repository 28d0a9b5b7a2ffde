"""While PostgreSQL is unreachable the API answers 503 with the one error body (nothing stored; retry), not a
500; when the database is back, pooled connections the outage ended are replaced and requests succeed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from nudge_engine.adapters.database import make_engine
from tests.support.postgres import PostgresServer

POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def _set_reachable(server: PostgresServer, database: str, reachable: bool) -> None:
    """Refuse (or allow again) new connections to ``database`` and end the sessions it has."""
    admin = make_engine(server.admin_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(reachable).lower()}'))
            if not reachable:
                db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                           {"name": database})
    finally:
        admin.dispose()


@pytest.fixture
def outage(database_url: str, postgres_server: PostgresServer) -> Iterator[Callable[[bool], None]]:
    """``outage(True)`` takes the test's database out of reach, ``outage(False)`` brings it back."""
    database = str(make_url(database_url).database)
    down = [False]

    def set_down(now_down: bool) -> None:
        _set_reachable(postgres_server, database, not now_down)
        down[0] = now_down

    yield set_down
    if down[0]:
        _set_reachable(postgres_server, database, True)


@POSTGRES_ONLY
def test_an_unreachable_database_answers_503_and_a_restored_one_serves_again(
    client: TestClient, service_headers: dict[str, str], outage: Callable[[bool], None]
) -> None:
    path = "/v1/patients/nobody-here/next-nudge"
    assert client.get(path, headers=service_headers).status_code == 404
    outage(True)
    down = client.get(path, headers=service_headers)
    assert down.status_code == 503, down.text
    assert down.json() == {"detail": [{"code": "database_unavailable",
                                       "msg": "the database is unavailable; nothing was stored, retry"}]}
    outage(False)
    assert client.get(path, headers=service_headers).status_code == 404


@pytest.mark.parametrize(("error", "status", "code"), [
    (OperationalError("SELECT 1", {}, Exception("database is locked")), 503, "database_unavailable"),
    (ProgrammingError("SELECT 1", {}, Exception("syntax error")), 500, "internal_error"),
])
def test_a_database_out_of_reach_is_503_and_a_faulty_statement_stays_500(
    app: FastAPI, client: TestClient, service_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    error: DBAPIError, status: int, code: str,
) -> None:
    def fail(**_: object) -> None:
        raise error

    monkeypatch.setattr(app.state.services.delivery, "next_nudge", fail)
    res = client.get("/v1/patients/anyone/next-nudge", headers=service_headers)
    assert res.status_code == status
    assert [item["code"] for item in res.json()["detail"]] == [code]


def test_every_api_route_documents_the_503_of_a_database_out_of_reach(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    undocumented = [f"{method.upper()} {path}" for path, operations in paths.items() if path.startswith("/v1/")
                    for method, operation in operations.items() if "503" not in operation["responses"]]
    assert undocumented == []
