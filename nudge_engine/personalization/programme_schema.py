"""The programme file format: a clinician-authored care programme, modelled on FHIR PlanDefinition.

One YAML file per programme. PlanDefinition elements and their counterparts here::

    url/version/status/title/description  -> id, version (semver), status, title, description
    publisher/author, approvalDate         -> owner, sign_off
    goal[] (priority, target)              -> goals
    action[] with timing and nested action -> stages (weeks from/to), targets (behaviour, priority)
    action.condition (applicability)       -> advance_when (leave a stage early on progress)

Health-outcome rewards and late-binding score weights are engine extensions (``reward``, ``weights``).
A behaviour is observed only through ``completed`` events of the nudges that serve it and, optionally,
``activity`` events of at least ``activity_min_minutes``: opens, deliveries and dismissals cannot be
named, so engagement can never become the objective. Unknown fields are errors.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nudge_engine.personalization.catalog_schema import NUDGE_ID, SLUG

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"


class ProgrammeStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


class GoalPriority(StrEnum):
    """FHIR goal-priority codes."""

    HIGH = "high-priority"
    MEDIUM = "medium-priority"
    LOW = "low-priority"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    name: str = Field(min_length=1, max_length=120)
    role: str = Field(min_length=1, max_length=120)


class SignOff(_Strict):
    """Who approved this version for use, and when (PlanDefinition.approvalDate)."""

    by: str = Field(min_length=1, max_length=120)
    role: str = Field(min_length=1, max_length=120)
    date: date


class Goal(_Strict):
    id: str = Field(pattern=SLUG)
    description: str = Field(min_length=1, max_length=500)
    priority: GoalPriority = GoalPriority.MEDIUM
    target: str | None = Field(default=None, max_length=300, description="the measurable target, as text")


class Behaviour(_Strict):
    """A healthy behaviour the programme wants, how it is observed, and which nudges serve it."""

    id: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=200)
    goals: tuple[str, ...] = ()
    nudges: tuple[str, ...] = Field(min_length=1, description="nudges that serve it; completing one is doing it")
    activity_min_minutes: float | None = Field(
        default=None, gt=0, le=600, description="an activity event of at least this many minutes also counts"
    )

    @model_validator(mode="after")
    def _ids(self) -> Behaviour:
        import re

        bad = [n for n in self.nudges if not re.match(NUDGE_ID, n)]
        if bad:
            raise ValueError(f"not a nudge id: {bad[0]!r}")
        if len(set(self.nudges)) != len(self.nudges):
            raise ValueError("duplicate nudge ids")
        return self


class Target(_Strict):
    behaviour: str = Field(pattern=SLUG)
    priority: int = Field(ge=1, le=10, description="clinical priority in this stage, 10 highest")


class AdvanceWhen(_Strict):
    """Leave the stage early once ``behaviour`` was done ``times`` times since the stage began."""

    behaviour: str = Field(pattern=SLUG)
    times: int = Field(ge=1, le=100)


class Weeks(_Strict):
    from_: int = Field(alias="from", ge=1, le=520)
    to: int | None = Field(default=None, ge=1, le=520, description="inclusive; omitted: open-ended (last stage)")

    @model_validator(mode="after")
    def _order(self) -> Weeks:
        if self.to is not None and self.to < self.from_:
            raise ValueError("'to' is before 'from'")
        return self


class Stage(_Strict):
    id: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=200)
    weeks: Weeks
    targets: tuple[Target, ...] = Field(min_length=1)
    advance_when: AdvanceWhen | None = None

    @model_validator(mode="after")
    def _advance_on_a_target(self) -> Stage:
        names = [t.behaviour for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("a behaviour is targeted twice")
        if self.advance_when is not None and self.advance_when.behaviour not in names:
            raise ValueError(f"advance_when: behaviour '{self.advance_when.behaviour}' is not a target of the stage")
        return self


class Reward(_Strict):
    """The health outcome a decision is rewarded with: the value of a behaviour done within the window."""

    window_hours: int = Field(default=48, ge=1, le=24 * 14)
    behaviours: dict[str, float] = Field(min_length=1, description="behaviour id -> value in (0, 1]")

    @model_validator(mode="after")
    def _values(self) -> Reward:
        for name, value in self.behaviours.items():
            if not 0.0 < value <= 1.0:
                raise ValueError(f"behaviours.{name}: value must be in (0, 1], got {value}")
        return self


class ProgrammeDoc(_Strict):
    """One programme file."""

    id: str = Field(pattern=SLUG)
    version: str = Field(pattern=SEMVER, description="semantic version; see the programmes README for bumping")
    status: ProgrammeStatus
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=2000)
    owner: Person
    sign_off: SignOff | None = None
    goals: tuple[Goal, ...] = Field(min_length=1)
    behaviours: tuple[Behaviour, ...] = Field(min_length=1)
    stages: tuple[Stage, ...] = Field(min_length=1)
    reward: Reward
    weights: dict[str, float] = Field(default_factory=dict, description="score component -> weight")

    @model_validator(mode="after")
    def _active_needs_sign_off(self) -> ProgrammeDoc:
        if self.status is ProgrammeStatus.ACTIVE and self.sign_off is None:
            raise ValueError("sign_off: an active programme needs a clinical sign-off")
        return self
