"""Load ``experiments.yaml``; every problem is named with the file, the experiment and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.experiments.model import ExperimentsConfig

DEFAULT_EXPERIMENTS = PACKAGE_ROOT / "data" / "experiments.yaml"


def load_experiments(path: Path = DEFAULT_EXPERIMENTS) -> ExperimentsConfig:
    """The validated experiments; ``InvalidInput`` when unreadable, ``InvalidRuleSet`` when invalid."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read experiments: {type(exc).__name__}") from None
    return parse_experiments(document, source=str(path))


def parse_experiments(document: object, *, source: str = "<experiments>") -> ExperimentsConfig:
    try:
        return ExperimentsConfig.model_validate(document)
    except ValidationError as exc:
        raise InvalidRuleSet([_problem(source, document, err) for err in exc.errors()]) from None


def _problem(source: str, document: object, err: object) -> str:
    loc = list(err["loc"]) if isinstance(err, dict) else []
    msg = err["msg"] if isinstance(err, dict) else str(err)
    where = source
    if len(loc) >= 2 and loc[0] == "experiments" and isinstance(loc[1], int) and isinstance(document, dict):
        items = document.get("experiments") or []
        if loc[1] < len(items) and isinstance(items[loc[1]], dict) and "id" in items[loc[1]]:
            where += f": experiment '{items[loc[1]]['id']}'"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc) or "(document)"
    return f"{where}: field '{field}': {msg}"
