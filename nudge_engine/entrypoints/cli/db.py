"""``nudge-engine db``: schema migrations."""

from __future__ import annotations

import typer

from nudge_engine.entrypoints.cli.output import console, fail_on_error

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to the newest schema (the only way the schema changes)."""
    from nudge_engine.adapters.migrations import upgrade
    from nudge_engine.bootstrap import Container

    with fail_on_error():
        container = Container.from_env()
        upgrade(container.engine, revision)
        console.print(f"database at {revision}: {container.engine.url.render_as_string(hide_password=True)}")
        container.dispose()
