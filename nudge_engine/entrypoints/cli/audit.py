"""``nudge-engine audit``: verify the tamper-evident trail, sign checkpoints, export for auditors."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nudge_engine.entrypoints.cli.output import EXIT_FAILED, console, err_console, fail_on_error, print_json
from nudge_engine.entrypoints.cli.runtime import open_container

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True)


def _instant(value: str | None, option: str) -> datetime | None:
    """ISO-8601 date or date-time; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise typer.BadParameter(f"not an ISO-8601 date or date-time: {value!r}", param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("verify")
def verify_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """Check the whole chain, its head and every signed checkpoint; exit 1 naming the first bad record."""
    from nudge_engine.audit.trail import AuditTrail

    with fail_on_error(), open_container() as container:
        trail = AuditTrail.from_settings(container.settings)
        with container.uow() as uow:
            result = trail.verify(uow.session)
    if as_json:
        print_json(result.as_dict())
    elif result.ok:
        console.print(result.summary())
    else:
        err_console.print(result.summary(), markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command("checkpoint")
def checkpoint_cmd() -> None:
    """Sign the current chain head now (the scheduler also does this periodically)."""
    from nudge_engine.audit.trail import AuditTrail

    with fail_on_error(), open_container() as container:
        trail = AuditTrail.from_settings(container.settings)
        with container.uow() as uow:
            checkpoint = trail.checkpoint(uow.session, now=container.clock())
            uow.commit()
    if checkpoint is None:
        console.print("audit trail is empty: nothing to sign")
    else:
        console.print(f"checkpoint signed at record {checkpoint.head_seq} ({checkpoint.head_hash[:16]}…)")


@app.command("export")
def export_cmd(
    since: str | None = typer.Option(None, "--since", help="From this ISO-8601 time (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="Up to this ISO-8601 time (exclusive)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | csv | fhir (FHIR R4 AuditEvent Bundle, IHE BALP)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """De-identified export for auditors: surrogate ids, codes, counts and chain hashes only."""
    from nudge_engine.audit.export import EventFilter, ExportFormat, export
    from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
    from nudge_engine.audit.trail import AuditTrail

    try:
        chosen = ExportFormat(fmt)
    except ValueError:
        raise typer.BadParameter("must be jsonl, csv or fhir", param_hint="--format") from None
    filters = EventFilter(since=_instant(since, "--since"), until=_instant(until, "--until"))
    with fail_on_error(), open_container() as container:
        trail = AuditTrail.from_settings(container.settings)
        with container.uow() as uow:
            if output is None:
                count = export(uow.session, filters, chosen, sys.stdout)
                sys.stdout.flush()
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = export(uow.session, filters, chosen, out)
            event = AuditEvent(
                event_type=EventType.EXPORTED,
                actor_role=ActorRole.AUDITOR,
                details={"format": chosen.value, "records": count},
            )
            trail.append(uow.session, [event], now=container.clock())
            uow.commit()
    err_console.print(f"exported {count} audit records ({chosen.value})")
