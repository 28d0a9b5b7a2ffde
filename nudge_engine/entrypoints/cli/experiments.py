"""``nudge-engine experiments``: check the experiments file, the sample-ratio check, results per arm.

Exit codes: 0 ok; 1 the checked thing failed (invalid or overlapping experiments, an SRM alarm);
2 usage or input error (unreadable file, unknown experiment).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from nudge_engine.domain.errors import NotFound
from nudge_engine.entrypoints.cli.output import EXIT_FAILED, console, err_console, fail_on_error, print_json
from nudge_engine.experiments.loader import DEFAULT_EXPERIMENTS, load_experiments

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

FILE_OPTION = typer.Option(DEFAULT_EXPERIMENTS, "--file", help="Experiments YAML.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document.")


@app.command("check")
def check(
    path: Path | None = typer.Argument(None, help="Experiments YAML (default: the packaged sample)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Validate experiments: schema, salts, arms, eligibility names, overlapping experiments."""
    from nudge_engine.config import Settings
    from nudge_engine.experiments.checks import Severity, check_config
    from nudge_engine.personalization.catalog import load_catalog
    from nudge_engine.personalization.segment_spec import load_segment_spec

    target = path or DEFAULT_EXPERIMENTS
    with fail_on_error():
        config = load_experiments(target)
        settings = Settings()
        flags = set(load_segment_spec(settings.segments).flags)
        programmes = {str(e.programme) for e in load_catalog(settings.catalog).entries if e.programme}
        problems = check_config(config, flags=flags, programmes=programmes or None)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if json_output:
        print_json({"valid": not errors, "path": str(target), "experiments": len(config.experiments),
                    "problems": [p.as_dict() for p in problems]})
    else:
        for p in problems:
            line = f"{p.severity.value}: {target}: {p.code} {', '.join(p.experiments)}: {p.detail}"
            (err_console if p.severity is Severity.ERROR else console).print(line, markup=False, soft_wrap=True)
        if not errors:
            console.print(f"experiments ok: {target} ({len(config.experiments)} experiments)", markup=False)
    if errors:
        raise typer.Exit(EXIT_FAILED)


def _result_of(experiment: str, file: Path, at: datetime | None, min_cell: int | None):  # type: ignore[no-untyped-def]
    from nudge_engine.bootstrap import Container
    from nudge_engine.experiments.analysis import analyse
    from nudge_engine.experiments.repository import load_exposures
    from nudge_engine.monitoring.settings import MonitorSettings
    from nudge_engine.reporting.service import default_as_of

    config = load_experiments(file)
    if experiment not in {e.id for e in config.experiments}:
        raise NotFound(f"{file}: experiment '{experiment}' is not defined")
    spec = config.experiment(experiment)
    monitor = MonitorSettings()
    container = Container.from_env()
    try:
        with container.uow() as uow:
            until = (at if at.tzinfo else at.replace(tzinfo=UTC)) if at else default_as_of(uow.session,
                                                                                            container.clock())
            data = load_exposures(uow.session, spec, until=until)
    finally:
        container.dispose()
    return analyse(spec, data, min_cell=min_cell or monitor.min_cell, confidence=monitor.confidence,
                   harm_alpha=monitor.harm_alpha, srm_alpha=monitor.srm_alpha)


@app.command("srm")
def srm(
    experiment: str = typer.Argument(..., help="Experiment id."),
    file: Path = FILE_OPTION,
    at: datetime | None = typer.Option(None, "--at", help="Count exposures up to this time (ISO-8601)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Sample-ratio mismatch on exposed patients (chi-square); exit 1 on an alarm (p < 0.001)."""
    with fail_on_error():
        result = _result_of(experiment, file, at, None)
    doc = {"experiment": experiment, **result.srm.as_dict()}
    if json_output:
        print_json(doc)
    else:
        state = "ALARM" if result.srm.alarm else "ok"
        console.print(f"{experiment}: {state}: counts {doc['counts']}, expected {doc['expected']}, "
                      f"chi2 {doc['chi2']}, p {doc['p_value']}", markup=False, soft_wrap=True)
    if result.srm.alarm:
        raise typer.Exit(EXIT_FAILED)


@app.command("results")
def results(
    experiment: str = typer.Argument(..., help="Experiment id."),
    file: Path = FILE_OPTION,
    at: datetime | None = typer.Option(None, "--at", help="End of the analysis window (ISO-8601)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Outcome rates per arm with confidence intervals, per segment, and harm flags."""
    with fail_on_error():
        result = _result_of(experiment, file, at, None)
    if json_output:
        print_json(result.as_dict())
        return
    console.print(f"{experiment} (control {result.control}); SRM p = {result.srm.p_value:.3g}"
                  f"{' ALARM' if result.srm.alarm else ''}", markup=False)
    for c in result.overall:
        if c.suppressed:
            console.print(f"  {c.arm}: suppressed (fewer than {result.min_cell} patients)", markup=False)
            continue
        comp = f"{c.completion.value:.3f} [{c.completion.low:.3f}, {c.completion.high:.3f}]" if c.completion else "-"
        diff = (f"{c.completion_diff.value:+.3f} [{c.completion_diff.low:+.3f}, {c.completion_diff.high:+.3f}]"
                if c.completion_diff else "-")
        console.print(f"  {c.arm}: {c.patients} patients, completion {comp}, vs control {diff}", markup=False)
    for c in result.harmed:
        console.print(f"  HARM: {c.arm} in segment {c.segment} (adjusted p {min(c.harm_p.values()):.3g})",
                      markup=False)
