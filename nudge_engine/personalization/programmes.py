"""Load and validate care programmes against the catalog; compile them to arrays over the catalog.

Every problem in every file is collected and raised together as :class:`InvalidRuleSet`, each
message naming the file, the programme id and the field (``programmes/t2d_lifestyle.yaml: programme
't2d_lifestyle': field 'behaviours.0.nudges': unknown nudge 'ex-walk-11min'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import ValidationError

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.domain.nudge import Category
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.programme_schema import ProgrammeDoc
from nudge_engine.personalization.scoring import COMPONENT_NAMES

WEEK = 7 * 86_400
MAX_WEIGHT = 100.0
# Completing one of these is engagement with the app, not a health behaviour: never a reward on its own.
ENGAGEMENT_CATEGORIES = frozenset({Category.ONBOARDING, Category.EDUCATION})


@dataclass(frozen=True, slots=True)
class Programme:
    """A validated programme as arrays over one catalog (behaviours ``B``, stages ``S``, nudges ``N``)."""

    doc: ProgrammeDoc
    source: str
    behaviour_ids: tuple[str, ...]
    serves: npt.NDArray[np.bool_]  # (B, N): the nudge serves the behaviour; completing it is doing it
    activity_min_minutes: npt.NDArray[np.float64]  # (B,) inf when activity events do not count
    stage_ids: tuple[str, ...]
    stage_start_s: npt.NDArray[np.float64]  # (S,) seconds after enrolment when the stage begins by the calendar
    stage_priority: npt.NDArray[np.float64]  # (S, N) highest target priority / 10 the nudge serves in the stage
    advance_behaviour: npt.NDArray[np.intp]  # (S,) behaviour index of advance_when, -1 when none
    advance_times: npt.NDArray[np.int64]  # (S,)
    reward_value: npt.NDArray[np.float64]  # (B,) value of doing the behaviour (0: not rewarded)
    reward_window_s: float

    @property
    def id(self) -> str:
        return self.doc.id

    @property
    def version(self) -> str:
        return self.doc.version

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.doc.weights)


class ProgrammeSet(Mapping[str, Programme]):
    """The programmes of a deployment by id, compiled against one catalog."""

    def __init__(self, programmes: Iterable[Programme], catalog: Catalog) -> None:
        self._by_id = {p.id: p for p in programmes}
        self.catalog_digest = catalog.digest
        self.n_nudges = len(catalog)

    def __getitem__(self, key: str) -> Programme:
        return self._by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def versions(self) -> dict[str, str]:
        return {pid: p.version for pid, p in sorted(self._by_id.items())}


def load_programmes(directory: Path, catalog: Catalog) -> ProgrammeSet:
    """Every ``*.yaml`` in ``directory``, validated against ``catalog``. Raises with every problem found."""
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: cannot read programmes: not a directory")
    problems: list[str] = []
    programmes: list[Programme] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read programme: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}:" if mark is not None else ""
            problems.append(f"{path}:{where} field '-': not valid YAML ({getattr(exc, 'problem', exc)})")
            continue
        try:
            programme = parse_programme(document, source=str(path), catalog=catalog)
        except InvalidRuleSet as exc:
            problems.extend(exc.problems)
            continue
        if programme.id != path.stem:
            problems.append(f"{path}: programme '{programme.id}': field 'id': must match the file name '{path.stem}'")
        if programme.id in seen:
            problems.append(f"{path}: programme '{programme.id}': field 'id': already defined in {seen[programme.id]}")
        seen[programme.id] = str(path)
        programmes.append(programme)
    if problems:
        raise InvalidRuleSet(problems)
    return ProgrammeSet(programmes, catalog)


def parse_programme(document: object, *, source: str, catalog: Catalog) -> Programme:
    """Validate one parsed programme document against ``catalog``."""
    pid = str(document.get("id")) if isinstance(document, dict) and document.get("id") else "?"
    if not isinstance(document, dict):
        raise InvalidRuleSet([f"{source}: field '-': a programme must be a mapping"])
    try:
        doc = ProgrammeDoc.model_validate(document)
    except ValidationError as exc:
        raise InvalidRuleSet([_problem(source, pid, err) for err in exc.errors()]) from None
    problems = [f"{source}: programme '{doc.id}': field '{field}': {msg}" for field, msg in _cross_checks(doc, catalog)]
    if problems:
        raise InvalidRuleSet(problems)
    return _compile(doc, source, catalog)


def _cross_checks(doc: ProgrammeDoc, catalog: Catalog) -> Iterator[tuple[str, str]]:
    for kind, items in (("goals", doc.goals), ("behaviours", doc.behaviours), ("stages", doc.stages)):
        ids = [i.id for i in items]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            yield f"{kind}.{ids.index(dup)}.id", f"duplicate id '{dup}'"
    goals = {g.id for g in doc.goals}
    behaviours = {b.id: b for b in doc.behaviours}
    for i, b in enumerate(doc.behaviours):
        for g in b.goals:
            if g not in goals:
                yield f"behaviours.{i}.goals", f"unknown goal '{g}'"
        for n in b.nudges:
            if n not in catalog.index:
                yield f"behaviours.{i}.nudges", f"unknown nudge '{n}'"
                continue
            restricted = catalog.entries[catalog.index[n]].programme
            if restricted is not None and restricted != doc.id:
                yield f"behaviours.{i}.nudges", f"nudge '{n}' is restricted to programme '{restricted}' in the catalog"
    expected_from = 1
    for i, s in enumerate(doc.stages):
        for j, t in enumerate(s.targets):
            if t.behaviour not in behaviours:
                yield f"stages.{i}.targets.{j}.behaviour", f"unknown behaviour '{t.behaviour}'"
        if s.weeks.from_ != expected_from:
            yield f"stages.{i}.weeks.from", f"expected week {expected_from} (stages follow each other without gaps)"
        if s.weeks.to is None and i != len(doc.stages) - 1:
            yield f"stages.{i}.weeks.to", "only the last stage may be open-ended"
        expected_from = (s.weeks.to or s.weeks.from_) + 1
    for name in doc.reward.behaviours:
        rewarded = behaviours.get(name)
        if rewarded is None:
            yield "reward.behaviours", f"unknown behaviour '{name}'"
            continue
        cats = {catalog.entries[catalog.index[n]].category for n in rewarded.nudges if n in catalog.index}
        if cats and cats <= ENGAGEMENT_CATEGORIES and rewarded.activity_min_minutes is None:
            yield f"reward.behaviours.{name}", "is observed only through onboarding/education nudges: engagement, " \
                "not a health behaviour"
    for name, value in doc.weights.items():
        if name not in COMPONENT_NAMES:
            yield f"weights.{name}", f"unknown score component (known: {', '.join(sorted(COMPONENT_NAMES))})"
        elif not (math.isfinite(value) and 0.0 <= value <= MAX_WEIGHT):
            yield f"weights.{name}", f"must be between 0 and {MAX_WEIGHT:g}"


def _compile(doc: ProgrammeDoc, source: str, catalog: Catalog) -> Programme:
    b_ids = tuple(b.id for b in doc.behaviours)
    b_index = {b: i for i, b in enumerate(b_ids)}
    serves = np.zeros((len(b_ids), len(catalog)), dtype=bool)
    for i, b in enumerate(doc.behaviours):
        serves[i, [catalog.index[n] for n in b.nudges]] = True
    stage_priority = np.zeros((len(doc.stages), len(catalog)))
    for s, stage in enumerate(doc.stages):
        for t in stage.targets:
            row = np.where(serves[b_index[t.behaviour]], t.priority / 10.0, 0.0)
            stage_priority[s] = np.maximum(stage_priority[s], row)
    return Programme(
        doc=doc, source=source, behaviour_ids=b_ids, serves=serves,
        activity_min_minutes=np.array([b.activity_min_minutes or np.inf for b in doc.behaviours]),
        stage_ids=tuple(s.id for s in doc.stages),
        stage_start_s=np.array([(s.weeks.from_ - 1) * WEEK for s in doc.stages], dtype=np.float64),
        stage_priority=stage_priority,
        advance_behaviour=np.array(
            [b_index[s.advance_when.behaviour] if s.advance_when else -1 for s in doc.stages], dtype=np.intp
        ),
        advance_times=np.array([s.advance_when.times if s.advance_when else 0 for s in doc.stages], dtype=np.int64),
        reward_value=np.array([doc.reward.behaviours.get(b, 0.0) for b in b_ids]),
        reward_window_s=float(doc.reward.window_hours * 3600),
    )


def _problem(source: str, pid: str, err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "-"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{source}: programme '{pid}': field '{field}': {msg}"
