"""``nudge-engine import`` and ``nudge-engine demo``: getting patients in."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nudge_engine.entrypoints.cli.output import console, err_console, fail_on_error, print_json


def _progress(*, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, disable=quiet, transient=False,
    )


def import_cmd(
    paths: list[Path] = typer.Argument(..., help="FHIR R4 Bundles (.json, .ndjson), folders, Synthea CSV folders."),
    fmt: str = typer.Option("auto", "--format", help="auto | fhir | synthea-csv"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout."),
) -> None:
    """Import patients; one transaction per file or CSV folder, re-import is a no-op."""
    from nudge_engine.bootstrap import Container
    from nudge_engine.services.importing import Importer, discover

    with fail_on_error():
        container = Container.from_env()
        units = discover(paths, fmt=fmt)
        importer = Importer(
            uow_factory=container.uow, vault=container.vault, audit=container.audit, clock=container.clock
        )
        with _progress(quiet=as_json) as progress:
            task = progress.add_task("importing", total=len(units))
            summary = importer.import_units(units, progress=lambda n: progress.advance(task, n))
        container.dispose()
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(
        f"imported {summary.files} file(s): {summary.patients} patients "
        f"({summary.patients_created} new, {summary.patients_updated} updated, "
        f"{summary.patients_unchanged} unchanged)"
    )
    if summary.skipped_files:
        console.print(f"skipped {len(summary.skipped_files)} non-FHIR JSON file(s): {', '.join(summary.skipped_files)}")


def demo_cmd(
    patients: int = typer.Option(1000, "--patients", min=1, help="Synthetic cohort size."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the cohort."),
    simulate_days: int = typer.Option(
        7, "--simulate-days", min=0, help="Simulated days of patient responses and daily builds (0: none)."
    ),
) -> None:
    """What ``make demo`` runs: migrate, generate and import a cohort, build, summarise."""
    from nudge_engine.services.demo import run_demo

    with fail_on_error():
        run_demo(patients=patients, seed=seed, console=console, progress=_progress(quiet=False),
                 simulate_days=simulate_days)


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("demo")(demo_cmd)
