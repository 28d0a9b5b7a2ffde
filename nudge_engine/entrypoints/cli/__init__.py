"""The ``nudge-engine`` command (contract §3). One screen that mounts every sub-command.

Exit codes: 0 ok, 1 the checked thing failed, 2 usage or input error (one stderr line naming the
file or field at fault).
"""

from __future__ import annotations

import importlib

import typer

from nudge_engine.entrypoints.cli import build, data, db, report, serve

app = typer.Typer(
    name="nudge-engine",
    help="Pick the next health nudge per patient, behind fail-closed clinical guardrails.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db", help="Database schema (Alembic migrations).")
data.register(app)
app.command("build")(build.build_cmd)
app.command("scheduler")(build.scheduler_cmd)
app.command("why")(build.why_cmd)
app.command("serve")(serve.serve_cmd)
app.command("report")(report.report_cmd)

# Sub-apps owned by their feature packages; mounted when present.
_SUBAPPS = {
    "rules": "Validate, test, explain and compare guardrail rule sets.",
    "audit": "Verify and export the de-identified audit trail.",
    "keys": "Manage the keys that encrypt patient identifiers.",
    "patients": "Patient-level operations such as erasure.",
    "tokens": "API tokens for the HTTP API.",
    "catalog": "Validate the nudge catalog and programmes.",
    "clinicians": "Accounts for the clinician review pages.",
    "evaluate": "Estimate a policy's value offline (IPS, SNIPS, doubly robust) or in the simulator.",
    "experiments": "Check experiments for overlaps, sample-ratio mismatch and results.",
}
for _name, _help in _SUBAPPS.items():
    try:
        _module = importlib.import_module(f"nudge_engine.entrypoints.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"nudge_engine.entrypoints.cli.{_name}":
            raise
        continue
    app.add_typer(_module.app, name=_name, help=_help)


def main() -> None:
    app()
