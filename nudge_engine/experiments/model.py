"""Declarative experiments (YAML): arms, traffic split, eligibility, start and end, salt; a global holdout.

An arm may set a *lever* of the build: ``policy`` (rank with the segment baseline, the bandit or at
random) or ``holdout: true`` (no nudge at all, except safety-relevant ones, see
:func:`nudge_engine.experiments.assignment.may_withhold`). Arms that set neither differ only in what
the patient app does with the nudge (framing, timing): such experiments may overlap freely.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nudge_engine.personalization.ranking import PolicyKind

_ID = r"^[a-z][a-z0-9_]{0,47}$"


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    weight: float = Field(gt=0, description="Relative share of traffic; weights are normalised.")
    policy: PolicyKind | None = Field(default=None, description="Ranking policy; none: the build's default.")
    holdout: bool = Field(default=False, description="No nudges (safety-relevant ones are never withheld).")

    @model_validator(mode="after")
    def _holdout_has_no_policy(self) -> ArmSpec:
        if self.holdout and self.policy is not None:
            raise ValueError("a holdout arm ranks nothing: drop 'policy'")
        return self

    @property
    def sets_lever(self) -> bool:
        return self.holdout or self.policy is not None


class Eligibility(BaseModel):
    """Who may enter: every condition given must hold (empty lists impose nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    programmes: tuple[str, ...] = ()
    flags_all: tuple[str, ...] = ()
    flags_any: tuple[str, ...] = ()
    flags_none: tuple[str, ...] = ()

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(self.flags_all) | frozenset(self.flags_any) | frozenset(self.flags_none)


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    version: str = "1"
    salt: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    hypothesis: str = ""
    arms: tuple[ArmSpec, ...] = Field(min_length=2)
    control: str
    eligibility: Eligibility = Eligibility()
    starts_at: datetime
    ends_at: datetime | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (for example 2026-12-01T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        ids = [a.id for a in self.arms]
        if len(set(ids)) != len(ids):
            raise ValueError("arm ids must be unique")
        if self.control not in ids:
            raise ValueError(f"control '{self.control}' is not one of the arms {ids}")
        if self.arm(self.control).holdout:
            raise ValueError("the control arm cannot be the holdout arm")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self

    def arm(self, arm_id: str) -> ArmSpec:
        return next(a for a in self.arms if a.id == arm_id)

    @property
    def arm_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.arms)

    @property
    def shares(self) -> dict[str, float]:
        total = sum(a.weight for a in self.arms)
        return {a.id: a.weight / total for a in self.arms}

    @property
    def sets_lever(self) -> bool:
        return any(a.sets_lever for a in self.arms)

    def running(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def with_weights(self, weights: dict[str, float]) -> ExperimentSpec:
        """The same experiment with other traffic weights (simulation: a broken split)."""
        arms = tuple(a.model_copy(update={"weight": weights.get(a.id, a.weight)}) for a in self.arms)
        return self.model_copy(update={"arms": arms})


class GlobalHoldout(BaseModel):
    """A share of patients who get no nudges at all (safety-relevant ones excepted), in no experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(ge=0.0, le=0.2)
    salt: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class ExperimentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    global_holdout: GlobalHoldout | None = None
    experiments: tuple[ExperimentSpec, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ExperimentsConfig:
        ids = [e.id for e in self.experiments]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"experiment ids must be unique: {dupes}")
        salts = [e.salt for e in self.experiments] + ([self.global_holdout.salt] if self.global_holdout else [])
        if len(set(salts)) != len(salts):
            raise ValueError("every experiment (and the global holdout) needs its own salt")
        return self

    def experiment(self, experiment_id: str) -> ExperimentSpec:
        return next(e for e in self.experiments if e.id == experiment_id)

    def replace_experiment(self, spec: ExperimentSpec) -> ExperimentsConfig:
        return self.model_copy(
            update={"experiments": tuple(spec if e.id == spec.id else e for e in self.experiments)}
        )
