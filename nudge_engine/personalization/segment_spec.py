"""The declarative segments file: which patient flags exist and which segments they define."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet
from nudge_engine.personalization.features import FeatureSettings

SEGMENT_ID = r"^[a-z][a-z0-9_]{1,63}$"
EngagementName = Literal["new", "active", "lapsing", "dormant"]
ActivityName = Literal["low", "moderate", "high"]


class SegmentWhen(BaseModel):
    """All given conditions must hold; an empty condition matches everybody."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flags_all: tuple[str, ...] = ()
    flags_any: tuple[str, ...] = ()
    flags_none: tuple[str, ...] = ()
    programme: tuple[str, ...] = ()
    engagement: tuple[EngagementName, ...] = ()
    activity: tuple[ActivityName, ...] = ()

    @property
    def flags(self) -> set[str]:
        return set(self.flags_all) | set(self.flags_any) | set(self.flags_none)


class SegmentDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SEGMENT_ID)
    description: str = Field(min_length=1, max_length=300)
    when: SegmentWhen = Field(default_factory=SegmentWhen)


class ClusterSettings(BaseModel):
    """Learned behaviour clusters: used only for patients with at least ``min_events`` recent events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(default=4, ge=2, le=20)
    min_events: int = Field(default=12, ge=1)
    seed: int = 20250601
    max_fit_patients: int = Field(default=50_000, ge=100)
    prefix: str = Field(default="behaviour", pattern=r"^[a-z][a-z0-9_]{1,30}$")


class SegmentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=32)
    flags: dict[str, str] = Field(description="flag name -> what the build computes for it")
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    segments: tuple[SegmentDef, ...] = Field(min_length=1)
    clusters: ClusterSettings = Field(default_factory=ClusterSettings)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentSpec:
        problems: list[str] = []
        seen: set[str] = set()
        for s in self.segments:
            if s.id in seen:
                problems.append(f"segment '{s.id}': field 'id': duplicate id")
            if s.id.startswith(self.clusters.prefix + "_"):
                problems.append(
                    f"segment '{s.id}': field 'id': prefix '{self.clusters.prefix}_' is for learned clusters"
                )
            seen.add(s.id)
            for flag in sorted(s.when.flags - set(self.flags)):
                problems.append(f"segment '{s.id}': field 'when': flag '{flag}' is not declared under 'flags'")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_segment_spec(path: Path) -> SegmentSpec:
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read segments: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidRuleSet([f"{path}: field '-': not valid YAML ({exc})"]) from None
    try:
        return SegmentSpec.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            msg = str(err["msg"]).removeprefix("Value error, ")
            if len(loc) >= 2 and loc[0] == "segments" and isinstance(document, dict):
                raw = (document.get("segments") or [])[int(loc[1])]
                sid = raw.get("id") if isinstance(raw, dict) else None
                who = sid or f"#{int(loc[1]) + 1}"
                problems.append(f"{path}: segment '{who}': field '{'.'.join(loc[2:]) or '-'}': {msg}")
            elif not loc:
                problems.extend(f"{path}: {m}" for m in msg.split("; "))
            else:
                problems.append(f"{path}: field '{'.'.join(loc)}': {msg}")
        raise InvalidRuleSet(problems) from None
