"""``nudge-engine build``: one build cycle now."""

from __future__ import annotations

import os
import socket

import typer

from nudge_engine.entrypoints.cli.output import console, err_console, fail_on_error, print_json


def build_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout."),
    shard_size: int = typer.Option(2000, "--shard-size", min=1, help="Patients per shard and transaction."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64,
        help="Worker processes on this machine (one per core is the most that helps). More machines can "
        "join a PostgreSQL build by running 'build' too.",
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="Late-binding score weights for this build, e.g. 'agenda:2,novelty:0.5' "
        "(components: predicted, baseline, priority, agenda, freshness, novelty, more_like_this)."
    ),
) -> None:
    """Run one build cycle (or finish an interrupted one) and print its counts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nudge_engine.bootstrap import Container
    from nudge_engine.personalization.agenda import parse_weight_overrides
    from nudge_engine.services.build.cycle import BuildOptions
    from nudge_engine.services.build.parallel import build_with_workers

    with fail_on_error():
        overrides = tuple(sorted(parse_weight_overrides(weights).items()))
        container = Container.from_env()
        with Progress(TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, disable=as_json) as progress:
            task = progress.add_task("build", total=None)
            summary = build_with_workers(
                container, workers=workers, worker=f"{socket.gethostname()}:{os.getpid()}",
                options=BuildOptions(shard_size=shard_size, weights=overrides),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        container.dispose()
    if as_json:
        print_json(summary.as_dict())
        return
    doc = summary.as_dict()
    console.print(f"cycle {doc['cycle_id']} {'resumed and ' if doc['resumed'] else ''}"
                  f"{'finished' if doc['finished'] else 'not finished (other workers still building)'}: "
                  f"{doc['patients']} patients in {doc['seconds']} s")
    console.print(f"ready: {doc['ready']}  review: {doc['review']}  without a nudge: {doc['patients_without_nudge']}")
    console.print(f"blocked by rule: {doc['blocked_by_rule']}")
    console.print(f"review by rule: {doc['review_by_rule']}")
    console.print(f"dropped by reason: {doc['dropped_by_reason']}")


def scheduler_cmd() -> None:
    """Run the build, retraining, review-expiry and audit-checkpoint jobs on their schedule (one process)."""
    from nudge_engine.bootstrap import Container
    from nudge_engine.entrypoints.jobs import job_table, make_scheduler

    with fail_on_error():
        container = Container.from_env()
        container.ruleset  # noqa: B018 - a broken rule set stops start-up here, not in the first job
        for spec in job_table():
            console.print(f"job {spec.name}: {spec.trigger}")
        scheduler = make_scheduler(container)
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            container.dispose()


def why_cmd(
    patient_id: str = typer.Argument(..., help="The patient's surrogate id (as in the audit trail)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Why this patient got (or did not get) each nudge in the latest build: components, weights, rules, reasons."""
    from nudge_engine.entrypoints.cli.runtime import open_container
    from nudge_engine.services.why import explain_decision

    with fail_on_error(), open_container() as container, container.uow() as uow:
        doc = explain_decision(uow.session, patient_id)
    if as_json:
        print_json(doc)
        return
    console.print(f"patient {doc['patient']}: {doc['outcome']} in cycle {doc['cycle']} (as of {doc['as_of']}), "
                  f"model {doc['model_version']}, stage {doc['stage']}", markup=False)
    for rank, pick in enumerate(doc["chosen"], start=1):
        parts = ", ".join(f"{name} {c['value']}×{c['weight']}={c['contribution']}"
                          for name, c in sorted(pick["components"].items(), key=lambda kv: -kv[1]["contribution"]))
        chosen_by = " (chosen by the exploration floor)" if pick["explored"] else ""
        console.print(f"  {rank}. {pick['nudge']} score {pick['score']}, expected {pick['expected']}{chosen_by}: "
                      f"{parts}", markup=False)
    for item in doc["why_the_winner"][:5]:
        console.print(f"  ahead on {item['component']}: {item['winner']} vs {item['runner_up']}", markup=False)
    for kind in ("review", "blocked"):
        for f in doc[kind]:
            console.print(f"  {kind}: {f['nudge']} by {', '.join(f['rules'])}", markup=False)
    for reason, nudges in doc["dropped"].items():
        console.print(f"  dropped ({reason}): {', '.join(nudges)}", markup=False)
