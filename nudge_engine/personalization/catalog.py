"""Load and validate the nudge catalog; expose it as columnar arrays for the build.

Every problem in the file is collected and raised together as :class:`InvalidRuleSet`, each
message naming the file, the nudge id and the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rfc8785
import yaml
from pydantic import ValidationError

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.domain.nudge import Category, Nudge
from nudge_engine.personalization.catalog_schema import CatalogHeader, NudgeEntry
from nudge_engine.personalization.limits import BurdenLimits

CATEGORIES: tuple[Category, ...] = tuple(Category)
CATEGORY_CODE: dict[Category, int] = {c: i for i, c in enumerate(CATEGORIES)}


class Catalog:
    """A validated catalog. Nudge ``i`` is ``entries[i]``; arrays are indexed the same way."""

    def __init__(
        self, entries: Sequence[NudgeEntry], *, version: str, locale: str, burden: BurdenLimits, source: str = ""
    ) -> None:
        self.entries: tuple[NudgeEntry, ...] = tuple(entries)
        self.version = version
        self.locale = locale
        self.burden = burden
        self.source = source
        self.ids: tuple[str, ...] = tuple(e.id for e in self.entries)
        self.index: dict[str, int] = {nid: i for i, nid in enumerate(self.ids)}
        self.category_code: npt.NDArray[np.int8] = np.array(
            [CATEGORY_CODE[e.category] for e in self.entries], dtype=np.int8
        )
        self.cooldown_s: npt.NDArray[np.int64] = np.array(
            [3600 * (e.cooldown_hours if e.cooldown_hours is not None else burden.default_cooldown_hours)
             for e in self.entries],
            dtype=np.int64,
        )
        self.priority: npt.NDArray[np.float64] = np.array([e.priority for e in self.entries], dtype=np.float64)
        self.programme: tuple[str | None, ...] = tuple(e.programme for e in self.entries)
        self.valid_from_s = np.array([_epoch(e.valid_from, -np.inf) for e in self.entries])
        self.valid_until_s = np.array([_epoch(e.valid_until, np.inf) for e in self.entries])
        self.language: tuple[str, ...] = tuple((e.locale or locale).split("-")[0] for e in self.entries)
        self.digest = catalog_digest(self)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def longest_cooldown(self) -> timedelta:
        """The longest cooldown of any nudge (zero for an empty catalog): how far back deliveries matter."""
        return timedelta(seconds=int(self.cooldown_s.max(initial=0)))

    def indices(self, nudge_ids: Iterable[str | None]) -> npt.NDArray[np.int32]:
        """Catalog positions of ``nudge_ids``; -1 for ids that are not (or no longer) in the catalog."""
        return np.fromiter((self.index.get(n, -1) if n else -1 for n in nudge_ids), dtype=np.int32)

    def nudge(self, i: int) -> Nudge:
        """The domain view of nudge ``i`` (what the guardrails evaluate)."""
        e = self.entries[i]
        return Nudge(e.id, e.category, e.intensity, e.duration_min, frozenset(e.tags), e.title, e.body)

    def nudges(self) -> tuple[Nudge, ...]:
        return tuple(self.nudge(i) for i in range(len(self)))

    def target_matrix(self, segment_ids: Sequence[str]) -> npt.NDArray[np.bool_]:
        """(nudges × segments): True where the nudge targets the segment. Untargeted rows are all False."""
        col = {s: j for j, s in enumerate(segment_ids)}
        out = np.zeros((len(self), len(segment_ids)), dtype=bool)
        for i, e in enumerate(self.entries):
            for s in e.target_segments:
                if s in col:
                    out[i, col[s]] = True
        return out

    @property
    def targeted(self) -> npt.NDArray[np.bool_]:
        return np.array([bool(e.target_segments) for e in self.entries], dtype=bool)

    def canonical(self) -> dict[str, Any]:
        """The content the digest covers: every field after validation and defaults."""
        return {
            "version": self.version,
            "locale": self.locale,
            "burden": self.burden.model_dump(mode="json"),
            "nudges": [e.model_dump(mode="json") for e in self.entries],
        }


def _epoch(value: datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


def catalog_digest(catalog: Catalog) -> str:
    """``sha256:`` of the RFC 8785 canonical JSON of the validated catalog (formatting-independent)."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(catalog.canonical())).hexdigest()


def load_catalog(path: Path, *, segment_ids: Collection[str] | None = None) -> Catalog:
    """Read and validate a catalog file. ``segment_ids``, when given, are the segments nudges may target."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read catalog: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise InvalidRuleSet([f"{path}:{where} field '-': not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_catalog(document, source=str(path), segment_ids=segment_ids)


def parse_catalog(document: object, *, source: str, segment_ids: Collection[str] | None = None) -> Catalog:
    """Validate an already parsed catalog document; raise :class:`InvalidRuleSet` with every problem."""
    if not isinstance(document, dict):
        raise InvalidRuleSet([f"{source}: field '-': the catalog must be a mapping with 'version' and 'nudges'"])
    try:
        header = CatalogHeader.model_validate(document)
    except ValidationError as exc:
        raise InvalidRuleSet([_problem(source, None, err) for err in exc.errors()]) from None

    problems: list[str] = []
    entries: list[NudgeEntry] = []
    for position, raw in enumerate(header.nudges):
        nid = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else f"#{position + 1}"
        try:
            entries.append(NudgeEntry.model_validate(raw))
        except ValidationError as exc:
            problems.extend(_problem(source, nid, err) for err in exc.errors())
    problems.extend(_cross_checks(source, entries, segment_ids))
    if problems:
        raise InvalidRuleSet(problems)
    return Catalog(entries, version=header.version, locale=header.locale, burden=header.burden, source=source)


def _cross_checks(source: str, entries: list[NudgeEntry], segment_ids: Collection[str] | None) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            problems.append(f"{source}: nudge '{e.id}': field 'id': duplicate id")
        seen.add(e.id)
    known = {e.id for e in entries}
    for e in entries:
        for f in e.follow_ups:
            if f not in known:
                problems.append(f"{source}: nudge '{e.id}': field 'follow_ups': unknown nudge '{f}'")
        if segment_ids is not None:
            for s in e.target_segments:
                if s not in segment_ids:
                    problems.append(f"{source}: nudge '{e.id}': field 'target_segments': unknown segment '{s}'")
    return problems


def _problem(source: str, nudge_id: str | None, err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    if nudge_id is None and len(loc) >= 2 and loc[0] == "nudges":
        nudge_id, loc = f"#{int(loc[1]) + 1}", loc[2:]
    field = ".".join(loc) or "-"
    msg = str(err["msg"]).removeprefix("Value error, ")
    who = f" nudge '{nudge_id}':" if nudge_id else ""
    return f"{source}:{who} field '{field}': {msg}"
