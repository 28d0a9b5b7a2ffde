"""What ``make demo`` runs after installing: migrate, generate and import a cohort, build, summarise."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from nudge_engine.adapters.migrations import upgrade
from nudge_engine.adapters.orm import ReadyNudgeRow
from nudge_engine.bootstrap import Container
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.cohort_import import NudgeMapper, import_cohort
from nudge_engine.services.importing import Importer

if TYPE_CHECKING:
    from nudge_engine.services.build.cycle import CycleSummary


def nudge_mapper(catalog: Catalog) -> NudgeMapper:
    """Map the generator's placeholder ids (``syn.<category>.<k>``) onto catalog nudges of that category."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for nudge in catalog.nudges():
        by_category[str(nudge.category)].append(nudge.id)

    def map_id(category: str | None, synthetic_id: str | None) -> str | None:
        if synthetic_id is None or category is None or not by_category.get(category):
            return None
        choices = by_category[category]
        k = int(synthetic_id.rsplit(".", 1)[-1]) if synthetic_id.rsplit(".", 1)[-1].isdigit() else 0
        return choices[k % len(choices)]

    return map_id


def run_demo(*, patients: int, seed: int, console: Console, progress: Progress, simulate_days: int = 0) -> None:
    container = Container.from_env()
    console.print(f"[bold]nudge-engine demo[/bold]: {patients} synthetic patients, seed {seed}")
    upgrade(container.engine)
    console.print(f"database migrated: {container.engine.url.render_as_string(hide_password=True)}")
    catalog = container.catalog
    console.print(f"rule set {container.ruleset.version} ({len(container.ruleset.rules)} rules), "
                  f"digest {container.ruleset.digest[:19]}…; catalog of {len(catalog)} nudges")

    now = container.clock()
    # The cohort is drawn as of the start of today (UTC): running the demo again today changes nothing.
    cohort_as_of = now.replace(hour=0, minute=0, second=0, microsecond=0)
    importer = Importer(uow_factory=container.uow, vault=container.vault, audit=container.audit,
                        clock=container.clock)
    with progress:
        task = progress.add_task("generating and importing", total=patients)
        summary = import_cohort(
            importer, container.uow, patients=patients, seed=seed, as_of=cohort_as_of, now=now,
            nudge_for=nudge_mapper(catalog), progress=lambda n: progress.advance(task, n),
        )
        build_task = progress.add_task("building", total=None)
        cycle = build_cycle(container, worker="demo")
        built = cycle.run(progress=lambda done, total: progress.update(build_task, completed=done, total=total))
    console.print(f"cohort: {summary.patients_created} new, {summary.patients_unchanged} unchanged, "
                  f"{summary.patients_updated} updated")
    _print_cycle(console, built)
    _print_examples(console, container, catalog)

    if simulate_days:
        _simulate_and_report(console, container, days=simulate_days, seed=seed, progress=progress)

    with container.uow() as uow:  # sign the head (which re-checks the records since the last checkpoint)
        container.audit.checkpoint(uow.session, now=container.clock())
        uow.commit()
    with container.uow() as uow:
        result = container.audit.verify(uow.session)
    if not result.ok:
        console.print(f"[red]audit chain NOT verified[/red]: {result.summary()}")
        container.dispose()
        raise SystemExit(1)
    console.print(result.summary())

    from clinical_review import ensure_demo_clinician

    username, password = ensure_demo_clinician(container)
    console.print("\nNext: start the API and the clinician pages with  [bold].venv/bin/nudge-engine serve[/bold]")
    console.print("  API: http://127.0.0.1:8000 (OpenAPI at /openapi.json); a token for the patient-app backend:"
                  " .venv/bin/nudge-engine tokens create --role service --name my-backend")
    console.print(f"  clinician review queue: http://127.0.0.1:8000/review/  user [bold]{username}[/bold]"
                  f"  password [bold]{password}[/bold] (new on every demo run; stored only hashed)")
    container.dispose()


def _simulate_and_report(console: Console, container: Container, *, days: int, seed: int, progress: Progress) -> None:
    """A few simulated weeks with planted effects, then the monitoring report over them."""
    from nudge_engine.experiments.simulation import Plant, simulate_weeks
    from nudge_engine.monitoring.settings import MonitorSettings
    from nudge_engine.reporting.service import default_as_of, generate_report

    plant = Plant(
        effect={("reminder_framing", "social_proof"): 0.08},  # a known +8-point completion effect
        harm=("ranking_policy", "bandit", "older_adult", 0.3),  # the bandit arm harms older adults
        drift_from_day=max(1, days - 4),  # activity minutes reported 2.5x from then on
    )
    with progress:
        task = progress.add_task("simulating days", total=days)
        result = simulate_weeks(container, days=days, seed=seed, plant=plant,
                                progress=lambda done, total: progress.update(task, completed=done, total=total))
    out = container.settings.var_dir / "report"
    with container.uow() as uow:
        as_of = default_as_of(uow.session, container.clock())
        written = generate_report(uow.session, out, now=as_of, generated_at=container.clock(),
                                  settings=MonitorSettings(window_days=4, reference_days=4),
                                  experiments=container.experiments)
    console.print(f"simulated {result.days} days ({result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}) with a planted "
                  "+8-point effect, a segment harm and drift")
    for alert in written.checkup.alerts[:8]:
        console.print(f"  alert: {alert.check} {alert.subject}", markup=False)
    console.print(f"report: {written.html} (open it in a browser; the same data in {written.json.name})")


def _print_cycle(console: Console, built: CycleSummary) -> None:
    doc = built.as_dict()
    console.print(f"build cycle {doc['cycle_id'][:8]}: {doc['patients']} patients in {doc['seconds']} s; "
                  f"nudges ready: {doc['ready']['inserted'] + doc['ready']['kept']}, "
                  f"sent to review: {doc['review']['created']}, patients without a nudge: "
                  f"{doc['patients_without_nudge']}")
    table = Table(title="guardrail outcomes by rule (candidate pairs)")
    table.add_column("rule")
    table.add_column("blocked", justify="right")
    table.add_column("review", justify="right")
    table.add_column("caution", justify="right")
    for rule in sorted(set(built.blocked_by_rule) | set(built.review_by_rule) | set(built.caution_by_rule)):
        table.add_row(rule, str(built.blocked_by_rule.get(rule, 0)), str(built.review_by_rule.get(rule, 0)),
                      str(built.caution_by_rule.get(rule, 0)))
    console.print(table)
    dropped = {k: v for k, v in doc["dropped_by_reason"].items() if v}
    console.print(f"dropped candidates by reason: {dropped}")


def _print_examples(console: Console, container: Container, catalog: Catalog) -> None:
    titles = {n.id: n.title for n in catalog.nudges()}
    with container.uow() as uow:
        rows = uow.session.execute(
            select(ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id, ReadyNudgeRow.score, ReadyNudgeRow.caution)
            .where(ReadyNudgeRow.status == "ready").order_by(ReadyNudgeRow.created_at, ReadyNudgeRow.id).limit(5)
        ).all()
    table = Table(title="a few next nudges (patients by surrogate id)")
    table.add_column("patient")
    table.add_column("nudge")
    table.add_column("score", justify="right")
    table.add_column("caution")
    for row in rows:
        table.add_row(row.patient_id[:8], titles.get(row.nudge_id, row.nudge_id), f"{row.score:.3f}",
                      "; ".join(row.caution)[:60])
    console.print(table)
