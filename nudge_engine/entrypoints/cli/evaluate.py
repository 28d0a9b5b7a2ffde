"""``nudge-engine evaluate``: off-policy estimates (IPS, SNIPS, DR, WDM) with intervals, overlap warnings,
and the estimator to read given the overlap (DR with adequate overlap, WDM without).

``--simulate`` runs the built-in simulator and prints each estimate beside the simulator's truth;
``--logged FILE.npz`` evaluates decisions the engine logged (arrays of ``LoggedDecisions``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nudge_engine.config import PACKAGE_ROOT, Settings
from nudge_engine.domain.errors import InvalidInput
from nudge_engine.entrypoints.cli.output import console, fail_on_error, print_json
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.evaluation import EvaluationReport, evaluate_in_simulator, evaluate_logged
from nudge_engine.personalization.ope import LoggedDecisions
from nudge_engine.personalization.ranking import PolicyKind
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.simulator import WorldSettings

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)


@app.callback(invoke_without_command=True)
def evaluate(
    simulate: bool = typer.Option(False, "--simulate", help="Log decisions in the simulator and compare with truth."),
    logged: Path | None = typer.Option(None, "--logged", help="Logged decisions (.npz of LoggedDecisions arrays)."),
    bandit_model: Path | None = typer.Option(None, "--bandit-model", help="A stored bandit model to evaluate."),
    logging_policy: PolicyKind = typer.Option(PolicyKind.BANDIT, "--logging", help="Simulator: the logging policy."),
    decisions: int = typer.Option(50_000, min=1000, help="Simulator: logged decisions."),
    patients: int = typer.Option(6000, min=100, help="Simulator: patients in the simulated cohort."),
    seed: int = typer.Option(1, help="Random seed."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate what candidate policies would achieve, from logged (or simulated) decisions."""
    with fail_on_error():
        if simulate == (logged is not None):
            raise InvalidInput("evaluate: field '--simulate/--logged': give exactly one of them")
        if simulate:
            catalog = load_catalog(Settings().catalog)
            spec = load_segment_spec(PACKAGE_ROOT / "data" / "segments.yaml")
            report = evaluate_in_simulator(
                catalog, spec, logging=logging_policy, n_decisions=decisions,
                world_settings=WorldSettings(n_patients=patients, seed=seed), seed=seed,
            )
        else:
            assert logged is not None
            model = None
            if bandit_model is not None:
                try:
                    model = LinearThompson.from_bytes(bandit_model.read_bytes())
                except OSError as exc:
                    raise InvalidInput(f"{bandit_model}: cannot read model: {exc.strerror}") from None
            report = evaluate_logged(LoggedDecisions.load(logged), bandit=model, seed=seed)
    if json_output:
        print_json(report.as_json())
        return
    _print(report)


def _print(report: EvaluationReport) -> None:
    simulated = any(e.truth is not None for e in report.evaluations)
    table = Table(title=f"Off-policy estimates ({report.rows} rows logged by {report.logging_policy})")
    table.add_column("policy")
    names = list(dict.fromkeys(k for ev in report.evaluations for k in ev.estimates))
    for name in names:
        table.add_column(f"{name.upper()} [95% CI]", justify="right")
    table.add_column("read", justify="right")
    if simulated:
        table.add_column("truth", justify="right")
        table.add_column("read/truth", justify="right")
    table.add_column("ESS", justify="right")
    for ev in report.evaluations:
        est = ev.estimates
        cells = [ev.policy] + [f"{est[k].value:.4f} [{est[k].low:.4f}, {est[k].high:.4f}]" if k in est else "-"
                               for k in names]
        read = ev.overlap.recommended if ev.overlap.recommended in est else "dr"
        cells.append(read.upper())
        if simulated and ev.truth is not None:
            cells += [f"{ev.truth:.4f}", f"{est[read].value / ev.truth:.3f}"]
        cells.append(f"{ev.overlap.ess:.0f}")
        table.add_row(*cells)
    console.print(table)
    for ev in report.evaluations:
        console.print(f"read: {ev.policy}: {ev.overlap.reason}", markup=False, soft_wrap=True)
        for warning in ev.overlap.warnings:
            console.print(f"warning: {ev.policy}: {warning}", markup=False, soft_wrap=True)
