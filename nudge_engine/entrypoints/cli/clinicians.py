"""``nudge-engine clinicians``: accounts for the clinician review pages (passwords stored as argon2id hashes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from nudge_engine.entrypoints.cli.output import EXIT_USAGE, console, err_console, fail_on_error

if TYPE_CHECKING:
    from clinical_review.accounts import ClinicianAccounts

app = typer.Typer(no_args_is_help=True)


@contextmanager
def _accounts() -> Iterator[ClinicianAccounts]:
    from clinical_review.accounts import ClinicianAccounts
    from nudge_engine.bootstrap import Container

    container = Container.from_env()
    try:
        yield ClinicianAccounts(uow_factory=container.uow, audit=container.audit, clock=container.clock)
    finally:
        container.dispose()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        err_console.print("error: password: empty", markup=False)
        raise typer.Exit(EXIT_USAGE)
    return password


@app.command("create")
def create_cmd(
    username: str = typer.Option(..., "--username", help="Log-in name: 3-64 characters of a-z, 0-9, '.', '_', '-'."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line."),
) -> None:
    """Create a clinician account (the password is prompted for, or read from stdin)."""
    password = _read_password(password_stdin)
    with fail_on_error(), _accounts() as accounts:
        account_id = accounts.create(username, password)
    console.print(f"clinician account {account_id} created; log in at /review/login")


@app.command("set-password")
def set_password_cmd(
    username: str = typer.Option(..., "--username", help="The account's log-in name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line."),
) -> None:
    """Set a new password (ends the account's sessions and unlocks it)."""
    password = _read_password(password_stdin)
    with fail_on_error(), _accounts() as accounts:
        accounts.set_password(username, password)
    console.print("password set")


@app.command("unlock")
def unlock_cmd(username: str = typer.Option(..., "--username", help="The account's log-in name.")) -> None:
    """Lift a lock-out after repeated failed log-ins."""
    with fail_on_error(), _accounts() as accounts:
        accounts.unlock(username)
    console.print("account unlocked")
