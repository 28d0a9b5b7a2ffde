"""``nudge-engine tokens``: API tokens for the HTTP API (shown once, stored hashed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from nudge_engine.entrypoints.cli.output import console, err_console, fail_on_error, print_json

if TYPE_CHECKING:
    from nudge_engine.bootstrap import Container
    from nudge_engine.services.tokens import TokenService

app = typer.Typer(no_args_is_help=True)


@contextmanager
def _service() -> Iterator[tuple[Container, TokenService]]:
    from nudge_engine.bootstrap import Container
    from nudge_engine.services.tokens import TokenService

    container = Container.from_env()
    try:
        yield container, TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock)
    finally:
        container.dispose()


@app.command("create")
def create_cmd(
    role: str = typer.Option(..., "--role", help="service | clinician | auditor | admin"),
    name: str = typer.Option(..., "--name", help="Who or what uses the token (for 'tokens list')."),
    expires_days: int | None = typer.Option(None, "--expires-days", min=1, help="Expire after N days."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Create a token and print it once; only its SHA-256 is stored."""
    with fail_on_error(), _service() as (_, tokens):
        issued = tokens.create(role=role, name=name, expires_days=expires_days)
    if as_json:
        print_json({"id": issued.id, "role": issued.role.value, "name": issued.name, "token": issued.secret,
                    "expires_at": issued.expires_at.isoformat() if issued.expires_at else None})
        return
    print(issued.secret)  # stdout: the token alone, for scripts
    expiry = issued.expires_at.isoformat() if issued.expires_at else "never"
    err_console.print(f"token {issued.id} ({issued.role.value}, expires {expiry}); it is not shown again")


@app.command("revoke")
def revoke_cmd(token_id: str = typer.Argument(..., help="The token's id (from 'tokens list').")) -> None:
    """Revoke a token (running servers stop accepting it within seconds)."""
    with fail_on_error(), _service() as (_, tokens):
        info = tokens.revoke(token_id)
    console.print(f"token {info.id} revoked")


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """List tokens: id, name, role, status and dates (never the token)."""
    with fail_on_error(), _service() as (container, tokens):
        rows = tokens.list_tokens()
        now = container.clock()
    docs = [
        {"id": t.id, "name": t.name, "role": t.role.value, "status": t.status(now),
         "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat() if t.expires_at else None,
         "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
        for t in rows
    ]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        console.print(f"{d['id']}  {d['role']:<9}  {d['status']:<7}  {d['name']}", markup=False)
