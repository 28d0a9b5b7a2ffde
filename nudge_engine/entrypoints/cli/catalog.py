"""``nudge-engine catalog``: validate the nudge catalog, the segments it targets and the care programmes.

Exit codes as ``rules check``: 0 valid, 1 invalid (one stderr line per problem naming file, nudge or
programme id and field), 2 a file cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nudge_engine.config import PACKAGE_ROOT, Settings
from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.entrypoints.cli.output import EXIT_FAILED, console, err_console, fail_on_error, print_json
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.programmes import load_programmes
from nudge_engine.personalization.segment_spec import load_segment_spec

DEFAULT_SEGMENTS = PACKAGE_ROOT / "data" / "segments.yaml"
DEFAULT_PROGRAMMES = PACKAGE_ROOT / "data" / "programmes"

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.command("check")
def check(
    path: Path | None = typer.Argument(None, help="Catalog YAML (default: NUDGE_CATALOG or the packaged sample)."),
    segments: Path = typer.Option(DEFAULT_SEGMENTS, help="Segments YAML the catalog's target_segments refer to."),
    programmes_dir: Path = typer.Option(
        DEFAULT_PROGRAMMES, "--programmes", help="Folder of care programme YAML files validated against the catalog."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Validate a nudge catalog (fields, vocabulary, ids, references) and the care programmes that use it."""
    catalog_path = path or Settings().catalog
    with fail_on_error():
        try:
            spec = load_segment_spec(segments)
            catalog = load_catalog(catalog_path, segment_ids={s.id for s in spec.segments})
            programmes = load_programmes(programmes_dir, catalog)
        except InvalidRuleSet as exc:
            # One line per problem, never wrapped (contract §3).
            for problem in exc.problems:
                err_console.print(f"error: {problem}", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
    if json_output:
        print_json({"valid": True, "path": str(catalog_path), "nudges": len(catalog), "version": catalog.version,
                    "digest": catalog.digest, "programmes": programmes.versions()})
        return
    console.print(
        f"catalog ok: {catalog_path} ({len(catalog)} nudges, version {catalog.version}, {catalog.digest})",
        markup=False,
        soft_wrap=True,
    )
    listed = ", ".join(f"{pid} {version}" for pid, version in programmes.versions().items()) or "none"
    console.print(f"programmes ok: {programmes_dir} ({listed})", markup=False, soft_wrap=True)
