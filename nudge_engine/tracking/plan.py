"""The tracking plan: which event types the engine accepts, with which properties (``data/tracking_plan.yaml``).

:func:`load_tracking_plan` validates the file and names every problem (file, field). A loaded
:class:`TrackingPlan` checks one event and returns its :class:`Problem` list: each names the field
of the request body at fault (``body.properties.minutes``), never its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet

CODE = r"^[a-z][a-z0-9_]{0,47}$"
NUDGE_ID = r"^[a-z0-9][a-z0-9._-]{1,63}$"
DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "data" / "tracking_plan.yaml"
# The event types the engine can process at all (services.events.EventKind); a plan declares a subset.
KNOWN_TYPES = frozenset({"delivered", "opened", "dismissed", "completed", "activity"})


class PropertyType(StrEnum):
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CODE = "code"


class PropertySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: PropertyType
    required: bool = False
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PropertySpec:
        if self.values is not None and self.type is not PropertyType.CODE:
            raise ValueError("'values' is only meaningful for type 'code'")
        if (self.min is not None or self.max is not None) and self.type not in (PropertyType.INTEGER,
                                                                                 PropertyType.NUMBER):
            raise ValueError("'min'/'max' are only meaningful for numbers")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError("'max' is below 'min'")
        return self


class EventSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nudge_id: Literal["required", "optional", "forbidden"] = "forbidden"
    properties: dict[str, PropertySpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> EventSpec:
        bad = [k for k in self.properties if not re.match(CODE, k)]
        if bad:
            raise ValueError(f"property name '{bad[0]}' must be snake_case")
        return self


class BehaviourSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    activity_kinds: tuple[str, ...] = ()
    nudges: tuple[str, ...] = ()


class PlanDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    events: dict[str, EventSpec] = Field(min_length=1)
    behaviours: dict[str, BehaviourSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> PlanDocument:
        unknown = sorted(set(self.events) - KNOWN_TYPES)
        if unknown:
            known = ", ".join(sorted(KNOWN_TYPES))
            raise ValueError(f"event type '{unknown[0]}' is not one the engine processes ({known})")
        seen: dict[str, str] = {}
        for name, b in self.behaviours.items():
            for nid in b.nudges:
                if nid in seen:
                    raise ValueError(f"nudge '{nid}' belongs to behaviours '{seen[nid]}' and '{name}'")
                seen[nid] = name
        return self


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an event is outside the plan: the body field at fault and a stable code."""

    field: str
    code: str  # unknown_type | nudge_id_required | nudge_id_forbidden | unknown_property | wrong_type | ...
    msg: str

    def __str__(self) -> str:
        return f"{self.field}: {self.msg}"


def _is_int(v: object) -> bool:
    """An integer as JSON Schema (and so the OpenAPI document) counts one: 30 or 30.0, not 30.5 or true."""
    if isinstance(v, float):
        return v.is_integer()
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_code(v: object) -> bool:
    return isinstance(v, str)


_TYPE_CHECKS: dict[PropertyType, Callable[[object], bool]] = {
    PropertyType.INTEGER: _is_int,
    PropertyType.NUMBER: _is_number,
    PropertyType.BOOLEAN: _is_bool,
    PropertyType.CODE: _is_code,
}


class TrackingPlan:
    """A validated tracking plan; :meth:`check` is a pure function of one event."""

    def __init__(self, document: PlanDocument, *, source: str = "") -> None:
        self.document = document
        self.version = document.version
        self.source = source
        self.types: frozenset[str] = frozenset(document.events)
        self.behaviour_of_nudge: dict[str, str] = {
            nid: name for name, b in document.behaviours.items() for nid in b.nudges
        }
        self.behaviour_of_activity: dict[str, str] = {
            kind: name for name, b in document.behaviours.items() for kind in b.activity_kinds
        }

    def check(self, type_: str, *, nudge_id: str | None, properties: Mapping[str, Any] | None) -> list[Problem]:
        """Every way the event differs from the plan (empty: it matches)."""
        spec = self.document.events.get(type_)
        if spec is None:
            return [Problem("body.type", "unknown_type",
                            f"'{type_}' is not an accepted 'type' in tracking plan {self.version} "
                            f"(one of {', '.join(sorted(self.types))})")]
        problems: list[Problem] = []
        if spec.nudge_id == "required" and not nudge_id:
            problems.append(Problem("body.nudge_id", "nudge_id_required", f"is required for '{type_}' events"))
        elif spec.nudge_id == "forbidden" and nudge_id:
            problems.append(Problem("body.nudge_id", "nudge_id_forbidden", f"is not expected on '{type_}' events"))
        props = dict(properties or {})
        for key in sorted(props):
            if key not in spec.properties:
                problems.append(Problem(f"body.properties.{key}", "unknown_property",
                                        f"is not a property of '{type_}' events in tracking plan {self.version}"))
        for key, p in sorted(spec.properties.items()):
            where = f"body.properties.{key}"
            if key not in props:
                if p.required:
                    problems.append(Problem(where, "missing_property", f"is required for '{type_}' events"))
                continue
            value = props[key]
            if not _TYPE_CHECKS[p.type](value):
                problems.append(Problem(where, "wrong_type", f"must be of type {p.type.value}"))
            elif p.values is not None and value not in p.values:
                problems.append(Problem(where, "unknown_value", f"must be one of {', '.join(p.values)}"))
            elif p.min is not None and value < p.min:
                problems.append(Problem(where, "out_of_range", f"must be at least {p.min:g}"))
            elif p.max is not None and value > p.max:
                problems.append(Problem(where, "out_of_range", f"must be at most {p.max:g}"))
        return problems


ENVELOPE_CODE = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_.:-]+$"}


def _property_schema(spec: PropertySpec) -> dict[str, Any]:
    if spec.type is PropertyType.CODE:
        return {"type": "string", "enum": list(spec.values)} if spec.values is not None else dict(ENVELOPE_CODE)
    if spec.type is PropertyType.BOOLEAN:
        return {"type": "boolean"}
    out: dict[str, Any] = {"type": spec.type.value}
    if spec.min is not None:
        out["minimum"] = int(spec.min) if spec.type is PropertyType.INTEGER else spec.min
    if spec.max is not None:
        out["maximum"] = int(spec.max) if spec.type is PropertyType.INTEGER else spec.max
    return out


def event_json_schema(plan: TrackingPlan) -> dict[str, Any]:
    """The plan as a JSON Schema (``oneOf`` per event type), for the OpenAPI document of the events route."""
    variants: list[dict[str, Any]] = []
    for name, spec in sorted(plan.document.events.items()):
        props: dict[str, Any] = {
            "type": {"type": "string", "enum": [name]},
            "occurred_at": {"type": "string", "format": "date-time",
                            "description": "When it happened; at most 5 minutes in the future"},
            "session_id": {**ENVELOPE_CODE, "description": "The app session"},
            "properties": {
                "type": "object", "additionalProperties": False,
                "properties": {k: _property_schema(p) for k, p in sorted(spec.properties.items())},
                "required": sorted(k for k, p in spec.properties.items() if p.required),
            },
        }
        required = ["type", "occurred_at"]
        if spec.nudge_id != "forbidden":
            props["nudge_id"] = dict(ENVELOPE_CODE)
        if spec.nudge_id == "required":
            required.append("nudge_id")
        variants.append({"title": f"{name} event", "type": "object", "additionalProperties": False,
                         "properties": props, "required": required})
    return {"title": "EventCreate", "description": f"An event of tracking plan {plan.version}", "oneOf": variants}


def parse_tracking_plan(document: object, *, source: str) -> TrackingPlan:
    if not isinstance(document, dict):
        raise InvalidRuleSet([f"{source}: field '-': the tracking plan must be a mapping with 'version' and 'events'"])
    try:
        return TrackingPlan(PlanDocument.model_validate(document), source=source)
    except ValidationError as exc:
        raise InvalidRuleSet([_problem(source, err) for err in exc.errors()]) from None


def _problem(source: str, err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "-"
    return f"{source}: field '{field}': {str(err['msg']).removeprefix('Value error, ')}"


def load_tracking_plan(path: Path = DEFAULT_PLAN) -> TrackingPlan:
    """Read and validate a tracking plan file; every problem is named (file, field)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read tracking plan: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidRuleSet([f"{path}: field '-': not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_tracking_plan(document, source=str(path))
