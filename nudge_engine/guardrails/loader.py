"""Read and validate a rule-set directory; refuse it with every problem when it does not validate.

Each problem names the file, the rule (or value set) id and the field, for example
``exercise/EX-03/rule.yaml: EX-03: field 'branches[0].when.any[1].obs.op': Input should be '>=' ...``.
Loading happens when asked (never at import time).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.guardrails import units
from nudge_engine.guardrails.ruleset import RuleSet
from nudge_engine.guardrails.schema import (
    Criterion,
    Manifest,
    Product,
    ProductFile,
    Rule,
    ValueSet,
    ValueSetFile,
)
from nudge_engine.guardrails.timewindows import Span

MANIFEST = "ruleset.yaml"
VALUESET_DIR = "valuesets"
RULE_FILE = "rule.yaml"


def load_ruleset(root: Path, *, parameters: Mapping[str, int | float] | None = None) -> RuleSet:
    """Load ``root``; ``parameters`` override the manifest's (e.g. the legal drinking age)."""
    problems: list[str] = []
    if not root.is_dir():
        raise InvalidRuleSet([f"{root}: rule set directory not found"])
    manifest = _load_manifest(root, problems)
    valuesets, products = _load_valuesets(root, problems)
    rules, files = _load_rules(root, problems)
    if manifest is not None and parameters:
        merged = {**manifest.parameters, **parameters}
        manifest = manifest.model_copy(update={"parameters": merged})
    if manifest is not None:
        _check_references(
            root, manifest=manifest, valuesets=valuesets, rules=rules, files=files, problems=problems
        )
    if problems or manifest is None:
        raise InvalidRuleSet(problems or [f"{root}: invalid rule set"])
    return RuleSet(manifest, valuesets, products, tuple(sorted(rules, key=lambda r: r.id)), root, files)


class _Unreadable:
    """Marks a file whose problem is already reported."""


UNREADABLE = _Unreadable()


def _read_yaml(path: Path, root: Path, problems: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problems.append(f"{_rel(path, root)}: not valid YAML{where}")
    except OSError as exc:
        problems.append(f"{_rel(path, root)}: cannot read ({exc.__class__.__name__})")
    return UNREADABLE


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(document)"


def _pydantic_problems(exc: ValidationError, prefix: str) -> Iterator[str]:
    for err in exc.errors():
        yield f"{prefix}: field '{_field(tuple(err['loc']))}': {err['msg']}"


def _load_manifest(root: Path, problems: list[str]) -> Manifest | None:
    path = root / MANIFEST
    if not path.is_file():
        problems.append(f"{MANIFEST}: ruleset: missing manifest file")
        return None
    raw = _read_yaml(path, root, problems)
    if raw is UNREADABLE:
        return None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, f"{MANIFEST}: ruleset"))
        return None


def _load_valuesets(root: Path, problems: list[str]) -> tuple[dict[str, ValueSet], dict[str, Product]]:
    valuesets: dict[str, ValueSet] = {}
    products: dict[str, Product] = {}
    where: dict[str, str] = {}
    for path in sorted((root / VALUESET_DIR).glob("*.yaml")):
        rel = _rel(path, root)
        raw = _read_yaml(path, root, problems)
        if raw is UNREADABLE:
            continue
        if not isinstance(raw, dict):
            problems.append(f"{rel}: valuesets: expected a mapping with 'valuesets' or 'products'")
            continue
        if "products" in raw:
            try:
                products.update(ProductFile.model_validate(raw).products)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(exc, f"{rel}: products"))
            continue
        try:
            parsed = ValueSetFile.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                vid = str(loc[1]) if len(loc) > 1 and loc[0] == "valuesets" else "valuesets"
                problems.append(f"{rel}: valueset {vid}: field '{_field(loc[2:] or loc)}': {err['msg']}")
            continue
        for vid, vs in parsed.valuesets.items():
            if vid in valuesets:
                problems.append(f"{rel}: valueset {vid}: field 'id': already defined in {where[vid]}")
                continue
            valuesets[vid] = vs
            where[vid] = rel
    for vid, vs in valuesets.items():
        for inc in vs.include:
            if inc not in valuesets:
                problems.append(f"{where[vid]}: valueset {vid}: field 'include': unknown value set '{inc}'")
    _check_cycles(valuesets, where, problems)
    return valuesets, products


def _check_cycles(valuesets: Mapping[str, ValueSet], where: Mapping[str, str], problems: list[str]) -> None:
    state: dict[str, int] = {}

    def visit(vid: str) -> bool:
        if state.get(vid) == 1:
            return False
        if state.get(vid) == 2 or vid not in valuesets:
            return True
        state[vid] = 1
        ok = all(visit(inc) for inc in valuesets[vid].include)
        state[vid] = 2
        return ok

    for vid in valuesets:
        if not visit(vid):
            problems.append(f"{where[vid]}: valueset {vid}: field 'include': includes itself (cycle)")
            return


def _load_rules(root: Path, problems: list[str]) -> tuple[list[Rule], dict[str, Path]]:
    rules: list[Rule] = []
    files: dict[str, Path] = {}
    for path in sorted(root.rglob(RULE_FILE)):
        rel = _rel(path, root)
        raw = _read_yaml(path, root, problems)
        if raw is UNREADABLE:
            continue
        folder = path.parent.name
        rid = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else folder
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, f"{rel}: {rid}"))
            continue
        if rule.id != folder:
            problems.append(f"{rel}: {rule.id}: field 'id': must match its folder name '{folder}'")
        if rule.id in files:
            problems.append(f"{rel}: {rule.id}: field 'id': duplicate of {_rel(files[rule.id], root)}")
            continue
        rules.append(rule)
        files[rule.id] = path
    if not rules and not problems:
        problems.append(f"{root}: no rules found (expected <family>/<RULE-ID>/{RULE_FILE})")
    return rules, files


def _check_references(
    root: Path,
    *,
    manifest: Manifest,
    valuesets: Mapping[str, ValueSet],
    rules: list[Rule],
    files: Mapping[str, Path],
    problems: list[str],
) -> None:
    preg = manifest.pregnancy
    for name in ("condition_valuesets", "end_condition_valuesets", "end_procedure_valuesets"):
        for vid in getattr(preg, name):
            if vid not in valuesets:
                problems.append(f"{MANIFEST}: ruleset: field 'pregnancy.{name}': unknown value set '{vid}'")
    if preg.status_observation_valueset not in valuesets:
        problems.append(f"{MANIFEST}: ruleset: field 'pregnancy.status_observation_valueset': unknown value set")
    for rule in rules:
        prefix = f"{_rel(files[rule.id], root)}: {rule.id}"
        for b, branch in enumerate(rule.branches):
            if branch.when is not None:
                _check_criterion(
                    branch.when, f"branches[{b}].when", prefix,
                    manifest=manifest, valuesets=valuesets, problems=problems,
                )
            if branch.escalate is not None and branch.escalate.when is not None:
                _check_criterion(
                    branch.escalate.when, f"branches[{b}].escalate.when", prefix,
                    manifest=manifest, valuesets=valuesets, problems=problems,
                )


def _check_criterion(
    crit: Criterion,
    loc: str,
    prefix: str,
    *,
    manifest: Manifest,
    valuesets: Mapping[str, ValueSet],
    problems: list[str],
) -> None:
    for key in ("all", "any"):
        parts: list[Criterion] | None = getattr(crit, key)
        for i, part in enumerate(parts or ()):
            _check_criterion(
                part, f"{loc}.{key}[{i}]", prefix, manifest=manifest, valuesets=valuesets, problems=problems
            )
    if crit.not_ is not None:
        _check_criterion(crit.not_, f"{loc}.not", prefix, manifest=manifest, valuesets=valuesets, problems=problems)
    for key in ("condition", "procedure", "medication", "obs", "missing_obs", "weight_gain", "persistent_obs"):
        leaf = getattr(crit, key)
        if leaf is None:
            continue
        here = f"{loc}.{key}"
        for vid in leaf.valuesets:
            if vid not in valuesets:
                problems.append(f"{prefix}: field '{here}.valuesets': unknown value set '{vid}'")
            elif key in ("obs", "missing_obs", "weight_gain", "persistent_obs") and not valuesets[vid].loinc:
                problems.append(f"{prefix}: field '{here}.valuesets': value set '{vid}' has no LOINC codes")
        unit = getattr(leaf, "unit", None)
        if unit is not None and not units.is_known(unit):
            problems.append(f"{prefix}: field '{here}.unit': unknown unit '{unit}'")
        for name in ("lookback", "latest_within", "baseline", "min_span"):
            value = getattr(leaf, name, None)
            if name == "min_span" and value is not None and Span.parse(value).days is None:
                problems.append(f"{prefix}: field '{here}.{name}': must be counted in days (PnD)")
    if crit.age is not None and crit.age.parameter is not None and crit.age.parameter not in manifest.parameters:
        problems.append(f"{prefix}: field '{loc}.age.parameter': unknown parameter '{crit.age.parameter}'")
