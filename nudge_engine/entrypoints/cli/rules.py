"""``nudge-engine rules ...``: check, test, explain and diff guardrail rule sets (contract §3, §6).

Exit codes: 0 ok, 1 the checked thing failed (invalid rule set, failing cases), 2 usage or input
error (bad bundle or nudge: one stderr line naming the file, resource and field).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import typer

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet, NudgeEngineError
from nudge_engine.domain.nudge import TAGS, Category, Intensity, Nudge
from nudge_engine.entrypoints.cli.output import console, err_console, print_json
from nudge_engine.guardrails.cases import DEFAULT_AS_OF, RuleCases, case_context, case_nudge, load_cases, run_cases
from nudge_engine.guardrails.compiler import compile_ruleset
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.guardrails.replay import ReplayPair, diff_rulesets
from nudge_engine.guardrails.ruleset import RuleSet

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

DirArg = typer.Argument(None, help="Rule-set directory (default: NUDGE_RULES_DIR / the packaged rules/).")


class _CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def fail_on_error() -> Iterator[None]:
    """Typed errors -> one unwrapped stderr line each and the contract's exit code (1 rules, 2 input)."""
    try:
        yield
    except InvalidRuleSet as exc:
        for problem in exc.problems:
            sys.stderr.write(f"error: {problem}\n")
        raise typer.Exit(1) from None
    except InvalidInput as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    except NudgeEngineError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None


def _load(directory: Path | None) -> RuleSet:
    import structlog

    from nudge_engine.config import Settings
    from nudge_engine.logs import configure_logging

    if not structlog.is_configured():  # log lines go to stderr, never into the JSON on stdout
        configure_logging(level="WARNING", stream=cast(TextIO, _CurrentStderr()))

    settings = Settings()
    return load_ruleset(directory or settings.rules_dir,
                        parameters={"legal_drinking_age": settings.legal_drinking_age})


@app.command("check")
def check_cmd(directory: Path | None = DirArg) -> None:
    """Validate a rule set and its example cases; exit 1 with one line per problem."""
    with fail_on_error():
        ruleset = _load(directory)
        root = ruleset.root or Path(".")
        cases = load_cases(root, {r.id for r in ruleset.rules})
        compile_ruleset(ruleset)
    total = sum(len(rc.cases) for rc in cases)
    console.print(f"ok: {len(ruleset.rules)} rules, {total} example cases, version {ruleset.version}, "
                  f"{ruleset.digest}", markup=False, soft_wrap=True)


@app.command("test")
def test_cmd(
    directory: Path | None = DirArg,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Run the example cases kept beside the rules; exit 1 when any fails."""
    with fail_on_error():
        ruleset = _load(directory)
        cases = load_cases(ruleset.root or Path("."), {r.id for r in ruleset.rules})
        compiled = compile_ruleset(ruleset)
        results = list(run_cases(compiled, cases))
    failed = [r for r in results if not r.passed]
    if as_json:
        print_json({
            "ruleset": {"version": ruleset.version, "digest": ruleset.digest},
            "cases": len(results), "failed": len(failed),
            "failures": [{"rule": r.rule_id, "case": r.case.name, "problems": list(r.problems)} for r in failed],
        })
    else:
        for r in failed:
            err_console.print(f"FAIL {r.rule_id}: {r.case.name}: {'; '.join(r.problems)}", markup=False)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed "
                      f"({len(cases)} rules, version {ruleset.version})", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command("explain")
def explain_cmd(
    patient: Path = typer.Option(..., "--patient", help="FHIR R4 Bundle (.json or .ndjson) of one patient."),
    nudge: Path = typer.Option(..., "--nudge", help="Nudge JSON (contract §6)."),
    at: str | None = typer.Option(None, "--at", help="Decision time, ISO 8601 (default: now, UTC)."),
    rules_dir: Path | None = typer.Option(None, "--rules", help="Rule-set directory (default: NUDGE_RULES_DIR)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the contract §6 JSON."),
) -> None:
    """Decide one patient x one nudge without any database and show why."""
    from nudge_engine.fhir.bundle import read_bundle

    with fail_on_error():
        when = parse_at(at)
        the_nudge = read_nudge_file(nudge)
        parsed = read_bundle(patient)
        if len(parsed.patients) != 1:
            raise InvalidInput(f"{patient.name}: expected exactly one Patient, found {len(parsed.patients)}")
        compiled = compile_ruleset(_load(rules_dir))
        decision = decide(parsed.patients[0].context, the_nudge, compiled, when)
    if as_json:
        print_json(decision.as_json())
        return
    console.print(f"decision: [bold]{decision.decision.value}[/bold]"
                  + (f"  escalation: {decision.escalation}" if decision.escalation else ""))
    for fired in decision.fired:
        console.print(f"  {fired.rule} {fired.action}: {'; '.join(fired.evidence)}", markup=False)
    for text in decision.caution:
        console.print(f"  caution: {text}", markup=False)
    console.print(f"ruleset {decision.ruleset_version} {decision.ruleset_digest}", markup=False, soft_wrap=True)


@app.command("diff")
def diff_cmd(
    old: Path = typer.Argument(..., help="The rule set in force."),
    new: Path = typer.Argument(..., help="The candidate rule set."),
    replay: list[Path] = typer.Option([], "--replay", help="Also replay these FHIR bundles (files or folders)."),
    at: str | None = typer.Option(None, "--at", help="Decision time for replayed bundles (default: now)."),
    stored: bool = typer.Option(True, "--stored/--no-stored",
                                help="Also replay the candidates of the last finished build cycle(s)."),
    cycles: int = typer.Option(1, "--cycles", min=1, help="How many recent finished cycles to replay."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Replay pairs under both rule sets: newly blocked, newly allowed, changed, by rule.

    Replayed: the stored candidates of the most recent finished build cycle(s) (every chosen,
    reviewed or blocked nudge, with the patient's current stored context at the cycle's time;
    ``--no-stored`` skips them), every example case of both rule sets (at its own as_of), and each
    patient of the --replay bundles crossed with every distinct nudge of those cases.
    """
    with fail_on_error():
        old_set, new_set = _load(old), _load(new)
        old_c, new_c = compile_ruleset(old_set), compile_ruleset(new_set)
        cases = _lenient_cases(old_set) + _lenient_cases(new_set)
        pairs = list(_case_pairs(cases)) + list(_bundle_pairs(replay, cases, parse_at(at)))
        stored_pairs = _stored_pairs(cycles) if stored else []
        result = diff_rulesets(old_c, new_c, [*stored_pairs, *pairs])
    sources = [f"example cases of {old} and {new}"] + [f"bundles under {p}" for p in replay]
    if stored:
        sources.insert(0, f"{len(stored_pairs)} stored decisions of the last {cycles} finished build cycle(s)")
    if as_json:
        print_json(result.as_json(sources))
        return
    console.print(f"replayed {result.pairs} pairs ({'; '.join(sources)})", markup=False)
    console.print(f"old {result.old_version} {result.old_digest}\nnew {result.new_version} {result.new_digest}",
                  markup=False)
    for title, changes in (("newly blocked", result.newly_blocked), ("newly allowed", result.newly_allowed),
                           ("changed", result.changed)):
        console.print(f"{title}: {len(changes)}", markup=False)
        for change in changes[:20]:
            console.print(f"  {change.label}: {change.old.decision.value} -> {change.new.decision.value}",
                          markup=False)
    for rule, counts in result.as_json(sources)["by_rule"].items():
        console.print(f"  {rule}: {counts}", markup=False)


def _stored_pairs(cycles: int) -> list[ReplayPair]:
    """Candidates of recent build cycles from the configured database (none when it has no schema yet)."""
    from sqlalchemy import inspect

    from nudge_engine.bootstrap import Container
    from nudge_engine.services.decision_replay import recent_decision_pairs

    container = Container.from_env()
    try:
        if "patient_decisions" not in inspect(container.engine).get_table_names():
            return []
        with container.uow() as uow:
            return list(recent_decision_pairs(uow.session, container.catalog.nudges(), cycles=cycles))
    finally:
        container.dispose()


def _lenient_cases(ruleset: RuleSet) -> list[RuleCases]:
    try:
        return load_cases(ruleset.root or Path("."), {r.id for r in ruleset.rules})
    except InvalidRuleSet as exc:
        for problem in exc.problems:
            err_console.print(f"warning: cases skipped: {problem}", markup=False)
        return []


def _case_pairs(cases: list[RuleCases]) -> Iterator[ReplayPair]:
    for rc in cases:
        for i, case in enumerate(rc.cases):
            at = case.at or DEFAULT_AS_OF
            yield ReplayPair(f"{rc.rule_id}#{i} {case.name}", case_context(case.patient, at),
                             case_nudge(case.nudge), at)


def _bundle_pairs(paths: list[Path], cases: list[RuleCases], at: datetime) -> Iterator[ReplayPair]:
    from nudge_engine.fhir.bundle import read_bundle

    nudges: dict[tuple[Any, ...], Nudge] = {}
    for rc in cases:
        for case in rc.cases:
            n = case_nudge(case.nudge)
            key = (n.category, n.intensity, n.duration_min, tuple(sorted(n.tags)))
            nudges.setdefault(key, Nudge(f"case-nudge-{len(nudges)}", n.category, n.intensity, n.duration_min,
                                         n.tags))
    for path in paths:
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            for k, record in enumerate(read_bundle(file).patients):
                for the_nudge in nudges.values():
                    yield ReplayPair(f"{file.name}#{k}", record.context, the_nudge, at)


def parse_at(text: str | None) -> datetime:
    """``--at`` as an aware UTC datetime (a value without a zone is read as UTC)."""
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--at: field 'at': not an ISO 8601 date-time: {text!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_nudge_file(path: Path) -> Nudge:
    """A contract §6 nudge; unknown categories, intensities or tags are input errors."""
    name = path.name
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read file ({exc.__class__.__name__})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"{name}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{name}: expected a JSON object (a nudge)")

    def bad(field: str, problem: str) -> InvalidInput:
        return InvalidInput(f"{name}: nudge: field '{field}': {problem}")

    try:
        category = Category(str(doc.get("category")))
    except ValueError:
        raise bad("category", f"unknown category {doc.get('category')!r}") from None
    try:
        intensity = Intensity(doc.get("intensity") or "none")
    except ValueError:
        raise bad("intensity", f"unknown intensity {doc.get('intensity')!r}") from None
    tags = doc.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("tags", "must be a list of strings")
    for i, tag in enumerate(tags):
        if tag not in TAGS:
            raise bad(f"tags[{i}]", f"unknown tag {tag!r}")
    duration = doc.get("duration_min")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int) or duration < 0):
        raise bad("duration_min", "must be a whole number of minutes or null")
    return Nudge(
        id=str(doc.get("id") or name), category=category, intensity=intensity, duration_min=duration,
        tags=frozenset(tags), title=str(doc.get("title") or ""), body=str(doc.get("body") or ""),
    )


if __name__ == "__main__":
    app()
