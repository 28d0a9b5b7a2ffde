"""``nudge-engine tokens``: a token is printed once, stored only as a hash, listed, revoked, audited."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, select

from nudge_engine.adapters.orm import ApiTokenRow, AuditRecordRow
from nudge_engine.services.tokens import AuthFailure, TokenService, hash_token
from tests.e2e.api.kit import Clock, make_container
from tests.support.cli import run_cli


def test_create_prints_the_token_once_and_stores_only_its_hash(database_url: str, tmp_path: Path) -> None:
    result = run_cli(["tokens", "create", "--role", "service", "--name", "patient app backend"],
                     database_url=database_url, var_dir=tmp_path)

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("ne_") and len(token) > 40
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(ApiTokenRow.token_hash, ApiTokenRow.role)).all()
        audit = conn.execute(select(AuditRecordRow.event_type, AuditRecordRow.details)).all()
    engine.dispose()
    assert [(h, r) for h, r in stored] == [(hash_token(token), "service")]
    assert token not in repr(stored) and token not in repr(audit)
    assert [e for e, _ in audit] == ["token_created"]


def test_list_and_revoke_by_id(database_url: str, tmp_path: Path) -> None:
    created = run_cli(["tokens", "create", "--role", "auditor", "--name", "audit desk", "--expires-days", "30",
                       "--json"], database_url=database_url, var_dir=tmp_path)
    token_id = json.loads(created.stdout)["id"]

    revoked = run_cli(["tokens", "revoke", token_id], database_url=database_url, var_dir=tmp_path)
    listed = run_cli(["tokens", "list", "--json"], database_url=database_url, var_dir=tmp_path)

    assert revoked.exit_code == 0
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["role"], row["status"], row["name"]) == (token_id, "auditor", "revoked", "audit desk")
    assert "token" not in row


def test_an_unknown_role_or_token_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    bad_role = run_cli(["tokens", "create", "--role", "root", "--name", "x"], database_url=database_url,
                       var_dir=tmp_path)
    bad_id = run_cli(["tokens", "revoke", "0" * 32], database_url=database_url, var_dir=tmp_path)

    assert bad_role.exit_code == 2 and "--role" in bad_role.stderr
    assert bad_id.exit_code == 2 and "no such token" in bad_id.stderr


def test_a_token_expires_and_a_revoked_one_is_refused(database_url: str, tmp_path: Path) -> None:
    clock = Clock()
    container = make_container(database_url, tmp_path, clock)
    tokens = TokenService(uow_factory=container.uow, audit=container.audit, clock=clock, cache_ttl=0)
    short = tokens.create(role="service", name="short-lived", expires_days=1)
    other = tokens.create(role="clinician", name="ward 3")

    assert tokens.authenticate(short.secret) != AuthFailure.EXPIRED
    clock.advance(days=1, seconds=1)
    assert tokens.authenticate(short.secret) == AuthFailure.EXPIRED
    tokens.revoke(other.id)
    assert tokens.authenticate(other.secret) == AuthFailure.REVOKED
    assert tokens.authenticate("ne_" + "x" * 43) == AuthFailure.UNKNOWN
    assert tokens.authenticate("Bearer nonsense") == AuthFailure.MALFORMED
    container.dispose()


def test_cached_authentication_never_outlives_the_tokens_expiry(database_url: str, tmp_path: Path) -> None:
    clock = Clock()
    container = make_container(database_url, tmp_path, clock)
    tokens = TokenService(uow_factory=container.uow, audit=container.audit, clock=clock, cache_ttl=3600)
    short = tokens.create(role="service", name="short-lived", expires_days=1)

    assert tokens.authenticate(short.secret) != AuthFailure.EXPIRED  # now cached
    clock.advance(days=2)
    assert tokens.authenticate(short.secret) == AuthFailure.EXPIRED
    container.dispose()
