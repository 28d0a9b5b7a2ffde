"""``nudge-engine report --out DIR``: write ``report.html`` and ``report.json`` (monitoring and experiments).

Read-only on the database. ``--at`` defaults to now, or to just after the newest build or event when
that is later (a simulated demo runs ahead of the wall clock).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from nudge_engine.entrypoints.cli.output import console, fail_on_error, print_json


def report_cmd(
    out: Path = typer.Option(..., "--out", help="Folder to write report.html and report.json into."),
    at: datetime | None = typer.Option(None, "--at", help="End of the current window (ISO-8601, UTC if naive)."),
    experiments_file: Path | None = typer.Option(None, "--experiments", help="Experiments YAML (default: packaged)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document (the paths and alert count)."),
) -> None:
    """Write the HTML report (inline SVG charts, readable offline) and the same data as JSON."""
    from datetime import UTC

    from nudge_engine.bootstrap import Container
    from nudge_engine.experiments.loader import DEFAULT_EXPERIMENTS, load_experiments
    from nudge_engine.monitoring.settings import MonitorSettings
    from nudge_engine.reporting.service import default_as_of, generate_report

    with fail_on_error():
        container = Container.from_env()
        experiments = load_experiments(experiments_file or DEFAULT_EXPERIMENTS)
        try:
            with container.uow() as uow:
                now = container.clock()
                as_of = (at if at.tzinfo else at.replace(tzinfo=UTC)) if at else default_as_of(uow.session, now)
                written = generate_report(uow.session, out, now=as_of, settings=MonitorSettings(),
                                          experiments=experiments, generated_at=now)
        finally:
            container.dispose()
    alerts = len(written.checkup.alerts)
    if json_output:
        print_json({"html": str(written.html), "json": str(written.json), "as_of": as_of.isoformat(),
                    "alerts": alerts})
        return
    console.print(f"report written: {written.html} and {written.json} (as of {as_of.isoformat()}, {alerts} alerts)",
                  markup=False, soft_wrap=True)
