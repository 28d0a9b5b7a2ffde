"""The YAML rule language, validated with pydantic (every model forbids unknown fields).

A rule set directory holds:

- ``ruleset.yaml``: :class:`Manifest` (name, semantic version, parameters, pregnancy definition);
- ``valuesets/*.yaml``: :class:`ValueSetFile` (named code lists, defined once, referenced by id) and
  ``valuesets/rxnorm-products.yaml``: :class:`ProductFile` (the local RxNorm product -> ingredient map);
- ``<family>/<RULE-ID>/rule.yaml``: one :class:`Rule`; ``cases.yaml`` beside it holds its examples.

Criteria are one-key mappings (``condition:``, ``obs:``, ``all:`` ...); see :class:`Criterion`.
Durations are ISO 8601: ``P30D`` (counted on calendar dates) or ``PT72H`` / ``PT60M`` (instants).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from nudge_engine.domain.nudge import TAGS, Category, Intensity

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"
RULE_ID = r"^[A-Z]{2,3}-\d{2}$"
VALUESET_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"

Action = Literal["block", "review", "caution"]
EscalationLevel = Literal["crisis", "urgent_clinical"]
Operator = Literal[">=", ">", "<", "<=", "=="]
FactKindName = Literal[
    "exercise-clearance", "fluid-restriction", "severe-symptomatic-aortic-stenosis", "nyha-class",
    "severe-hypoglycaemia",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_code(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Icd10CmCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")]
Icd10PcsCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[0-9A-HJ-NP-Z]{1,7}$")]
SnomedCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[1-9][0-9]{5,17}$")]
RxNormCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[1-9][0-9]{0,9}$")]
AtcCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")]
LoincCode = Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[0-9]{1,7}-[0-9]$")]
Route = Literal["oral", "intravenous", "intramuscular", "subcutaneous", "vaginal", "topical", "inhaled",
                "transdermal", "rectal", "ophthalmic", "other"]

DURATION = re.compile(r"^P(?:(\d+)D|T(\d+)H|T(\d+)M)$")


def _duration(value: Any) -> Any:
    if isinstance(value, str) and not DURATION.match(value):
        raise ValueError("must be an ISO 8601 duration of whole days (P30D), hours (PT72H) or minutes (PT60M)")
    return value


Duration = Annotated[str, BeforeValidator(_duration)]


class Analyte(Strict):
    """What unit conversion needs to know about the measured substance."""

    molar_mass: float | None = Field(default=None, gt=0, description="g/mol, for mg/dL <-> mmol/L")
    charge: int | None = Field(default=None, ge=1, description="ion charge, for mEq/L <-> mmol/L")


class CodeLists(Strict):
    icd10cm: list[Icd10CmCode] = []
    icd10pcs: list[Icd10PcsCode] = []
    snomed: list[SnomedCode] = []
    rxnorm: list[RxNormCode] = []
    atc: list[AtcCode] = []
    loinc: list[LoincCode] = []


class Exclusions(CodeLists):
    routes: list[Route] = []


class ValueSet(CodeLists):
    """Literal codes (SNOMED, RxNorm ingredients or products, LOINC) and literal prefixes (ICD-10, ATC)."""

    title: str
    include: list[Annotated[str, Field(pattern=VALUESET_ID)]] = []
    exclude: Exclusions | None = None
    analyte: Analyte | None = None
    notes: str | None = None
    unverified: list[str] = Field(default=[], description="codes still to be checked against the terminology")


class ValueSetFile(Strict):
    valuesets: dict[Annotated[str, Field(pattern=VALUESET_ID)], ValueSet]


class Product(Strict):
    name: str
    ingredients: list[RxNormCode] = Field(min_length=1)
    atc: list[AtcCode] = []
    route: Route


class ProductFile(Strict):
    products: dict[Annotated[str, BeforeValidator(_as_code), Field(pattern=r"^[1-9][0-9]{0,9}$")], Product]


class Pregnancy(Strict):
    """Where pregnancy evidence and pregnancy-end evidence come from (rules-spec §1.3, §0.20)."""

    condition_valuesets: list[str] = Field(min_length=1)
    end_condition_valuesets: list[str] = Field(min_length=1)
    end_procedure_valuesets: list[str] = []
    status_observation_valueset: str
    pregnant_value: SnomedCode
    not_pregnant_value: SnomedCode
    expiry: Duration = "P294D"


class Manifest(Strict):
    name: str
    version: Annotated[str, Field(pattern=SEMVER)]
    spec: str
    parameters: dict[Annotated[str, Field(pattern=r"^[a-z_]+$")], int | float] = {}
    pregnancy: Pregnancy
    versioning: str | None = None


class Source(Strict):
    title: str
    url: str | None = None
    secondary_copy: bool = Field(default=False, description="read through a mirror or syndicated copy")


class SignOff(Strict):
    status: Literal["draft", "approved"]
    clinician: str | None = None
    signed_on: date | None = None

    @model_validator(mode="after")
    def _approved_needs_who_and_when(self) -> SignOff:
        if self.status == "approved" and (not self.clinician or self.signed_on is None):
            raise ValueError("an approved rule needs 'clinician' and 'signed_on'")
        return self


class Target(Strict):
    """Which nudges a branch applies to. Given fields all have to hold; ``any``/``all`` nest."""

    any_nudge: bool = False
    category: list[Category] | None = None
    intensity: list[Intensity] | None = None
    any_tag: list[str] | None = None
    all_tags: list[str] | None = None
    min_duration: int | None = Field(default=None, ge=1, description="minutes; unknown duration matches")
    any: list[Target] | None = None
    all: list[Target] | None = None

    @field_validator("any_tag", "all_tags")
    @classmethod
    def _known_tags(cls, tags: list[str] | None) -> list[str] | None:
        unknown = sorted(set(tags or ()) - TAGS)
        if unknown:
            raise ValueError(f"unknown tag(s): {', '.join(unknown)}")
        return tags

    @model_validator(mode="after")
    def _not_empty(self) -> Target:
        given = [k for k in ("category", "intensity", "any_tag", "all_tags", "min_duration", "any", "all")
                 if getattr(self, k) is not None]
        if self.any_nudge and given:
            raise ValueError("'any_nudge' cannot be combined with other target fields")
        if not self.any_nudge and not given:
            raise ValueError("a target needs at least one field (or 'any_nudge: true')")
        return self


class Window(Strict):
    """``min``/``max`` age of the fact; both inclusive (rules-spec §0.1)."""

    min: Duration | None = None
    max: Duration | None = None


MissingDate = Literal["no_match", "match", "undefined"]


class ConditionCriterion(Strict):
    valuesets: list[str] = Field(min_length=1)
    status: Literal["active", "history"] = "active"
    onset: Window | None = None
    recorded: Window | None = Field(default=None, description="measured from the later of onset and recordedDate")
    on_missing_date: MissingDate = "no_match"


class ProcedureCriterion(Strict):
    valuesets: list[str] = Field(min_length=1)
    performed: Window | None = None
    on_missing_date: MissingDate = "no_match"


class MedicationCriterion(Strict):
    valuesets: list[str] = Field(min_length=1)
    washout: Duration | None = Field(default=None, description="ended no longer ago than this still counts")


OnMissing = Literal["inherit", "not_applicable", "review", "fire"]


class ObservationCriterion(Strict):
    valuesets: list[str] = Field(min_length=1)
    op: Operator
    value: float
    unit: str
    lookback: Duration
    select: Literal["latest", "any"] = "latest"
    on_missing: OnMissing = "inherit"
    project: Literal["gestational_age"] | None = None
    fallback: Literal["bmi_from_weight_height"] | None = None


class MissingObservation(Strict):
    valuesets: list[str] = Field(min_length=1)
    lookback: Duration
    fallback: Literal["bmi_from_weight_height"] | None = None


class AgeCriterion(Strict):
    op: Operator
    value: int | None = None
    parameter: str | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> AgeCriterion:
        if (self.value is None) == (self.parameter is None):
            raise ValueError("give exactly one of 'value' or 'parameter'")
        return self


class FactCriterion(Strict):
    kind: FactKindName
    values: list[str] | None = Field(default=None, description="accepted valueString values (any case)")
    within: Duration | None = None


class WeightGainCriterion(Strict):
    valuesets: list[str] = Field(min_length=1)
    gain: float = Field(gt=0)
    unit: str
    latest_within: Duration
    baseline: Duration


class PersistentObservation(Strict):
    valuesets: list[str] = Field(min_length=1)
    op: Operator
    value: float
    unit: str
    lookback: Duration
    min_span: Duration


class Criterion(Strict):
    """Exactly one key: a leaf test on the patient, or ``all`` / ``any`` / ``not`` of criteria."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all: list[Criterion] | None = Field(default=None, min_length=1)
    any: list[Criterion] | None = Field(default=None, min_length=1)
    not_: Criterion | None = Field(default=None, alias="not")
    condition: ConditionCriterion | None = None
    procedure: ProcedureCriterion | None = None
    medication: MedicationCriterion | None = None
    obs: ObservationCriterion | None = None
    missing_obs: MissingObservation | None = None
    age: AgeCriterion | None = None
    pregnant: Literal[True] | None = None
    fact: FactCriterion | None = None
    weight_gain: WeightGainCriterion | None = None
    persistent_obs: PersistentObservation | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Criterion:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a criterion has exactly one key, got {len(given)}: {', '.join(given) or 'none'}")
        return self


class Escalation(Strict):
    level: EscalationLevel
    when: Criterion | None = None


class Branch(Strict):
    """One action of a rule: if the nudge matches ``target`` and the patient ``when``, act."""

    action: Action
    target: Target
    when: Criterion | None = None
    caution: str | None = None
    escalate: Escalation | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Branch:
        if self.action == "caution" and not (self.caution and self.caution.strip()):
            raise ValueError("a caution branch needs 'caution' text")
        if self.action != "caution" and self.caution is not None:
            raise ValueError("'caution' text belongs to caution branches only")
        if self.escalate is not None and self.action == "caution":
            raise ValueError("an escalation always comes with block or review")
        return self


class Rule(Strict):
    id: Annotated[str, Field(pattern=RULE_ID)]
    version: Annotated[str, Field(pattern=SEMVER)]
    title: str
    rationale: str
    sources: list[Source] = Field(min_length=1)
    owner: str
    sign_off: SignOff
    on_missing: Literal["not_applicable", "review", "fire"] = "not_applicable"
    design_defaults: list[str] = []
    follow_up: str | None = None
    branches: list[Branch] = Field(min_length=1)
