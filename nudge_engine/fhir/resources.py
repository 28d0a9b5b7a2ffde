"""One FHIR R4 resource (a dict) into one domain object, with errors that name the field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from nudge_engine.domain.codes import CodeSystem, normalise_icd10, normalise_system
from nudge_engine.domain.context import (
    ClinicalFact,
    Coding,
    Condition,
    Medication,
    Moment,
    Observation,
    PatientIdentifiers,
    Procedure,
    Quantity,
)
from nudge_engine.domain.errors import InvalidResource
from nudge_engine.fhir.timeparse import BadTime, parse_date, parse_latest_date, parse_moment

CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
VERIFICATION_STATUSES = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)

Resource = Mapping[str, Any]


class ResourceReader:
    """Reads fields of one resource, raising :class:`InvalidResource` that names the field."""

    def __init__(self, resource: Resource, *, source: str | None) -> None:
        self.resource = resource
        self.source = source
        rtype = resource.get("resourceType", "?")
        self.label = f"{rtype}/{resource.get('id', '?')}"

    def fail(self, field: str, problem: str) -> InvalidResource:
        return InvalidResource(resource=self.label, field=field, problem=problem, source=self.source)

    def moment(self, field: str, *, required: bool = False) -> Moment | None:
        value = self.resource.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return None
        try:
            return parse_moment(value)
        except BadTime as exc:
            raise self.fail(field, str(exc)) from None

    def period(self, field: str) -> tuple[Moment | None, Moment | None]:
        value = self.resource.get(field)
        if value is None:
            return None, None
        if not isinstance(value, Mapping):
            raise self.fail(field, "must be a Period object")
        out: list[Moment | None] = []
        for part in ("start", "end"):
            raw = value.get(part)
            try:
                out.append(parse_moment(raw) if raw is not None else None)
            except BadTime as exc:
                raise self.fail(f"{field}.{part}", str(exc)) from None
        return out[0], out[1]

    def codings(self, field: str, concept: Any, *, required: bool = True) -> tuple[Coding, ...]:
        if concept is None:
            if required:
                raise self.fail(field, "is required")
            return ()
        if not isinstance(concept, Mapping):
            raise self.fail(field, "must be a CodeableConcept object")
        raw = concept.get("coding", [])
        if not isinstance(raw, list):
            raise self.fail(f"{field}.coding", "must be a list")
        result: list[Coding] = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise self.fail(f"{field}.coding[{i}]", "must be a Coding object")
            system, code = item.get("system"), item.get("code")
            if not isinstance(code, str | int) or str(code).strip() == "":
                raise self.fail(f"{field}.coding[{i}].code", "is required")
            if system is not None and not isinstance(system, str):
                raise self.fail(f"{field}.coding[{i}].system", "must be a string")
            sys_uri = normalise_system(system)
            code_text = str(code).strip()
            if sys_uri == CodeSystem.ICD10CM:
                code_text = normalise_icd10(code_text)
            display = item.get("display")
            result.append(Coding(sys_uri, code_text, display if isinstance(display, str) else None))
        if required and not result:
            raise self.fail(f"{field}.coding", "needs at least one coding with a system and a code")
        return tuple(result)

    def status_code(self, field: str, allowed: frozenset[str]) -> str | None:
        concept = self.resource.get(field)
        if concept is None:
            return None
        codes = [c.code for c in self.codings(field, concept, required=False)]
        if not codes:
            raise self.fail(f"{field}.coding", "needs a status code")
        code = codes[0]
        if code not in allowed:
            raise self.fail(f"{field}.coding[0].code", f"unknown status {code!r}")
        return code

    def plain_status(self, *, required: bool) -> str | None:
        status = self.resource.get("status")
        if status is None:
            if required:
                raise self.fail("status", "is required")
            return None
        if not isinstance(status, str):
            raise self.fail("status", "must be a code string")
        return status

    def quantity(self, field: str) -> Quantity | None:
        raw = self.resource.get(field)
        if raw is None:
            return None
        return quantity_of(raw, lambda problem, sub="": self.fail(f"{field}{sub}", problem))


def quantity_of(raw: Any, fail: Any) -> Quantity:
    if not isinstance(raw, Mapping):
        raise fail("must be a Quantity object")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail("must be a number", ".value")
    try:
        number = float(value)
    except OverflowError:
        raise fail("is out of range", ".value") from None
    if not math.isfinite(number):
        raise fail("must be a finite number", ".value")
    unit = raw.get("code") or raw.get("unit")
    return Quantity(number, str(unit) if unit is not None else None)


def read_condition(res: Resource, *, source: str | None) -> Condition:
    r = ResourceReader(res, source=source)
    return Condition(
        codings=r.codings("code", res.get("code")),
        clinical_status=r.status_code("clinicalStatus", CLINICAL_STATUSES),
        verification_status=r.status_code("verificationStatus", VERIFICATION_STATUSES),
        onset=r.moment("onsetDateTime") or r.period("onsetPeriod")[0],
        abatement=r.moment("abatementDateTime") or r.period("abatementPeriod")[0],
        recorded=r.moment("recordedDate"),
        source_id=_id(res),
    )


def read_procedure(res: Resource, *, source: str | None) -> Procedure:
    r = ResourceReader(res, source=source)
    performed = r.moment("performedDateTime")
    if performed is None:
        start, end = r.period("performedPeriod")
        performed = start or end
    return Procedure(
        codings=r.codings("code", res.get("code")),
        status=r.plain_status(required=True),
        performed=performed,
        source_id=_id(res),
    )


def read_medication(
    res: Resource, *, source: str | None, medications: Mapping[str, Resource]
) -> Medication:
    r = ResourceReader(res, source=source)
    rtype = str(res.get("resourceType"))
    if "medicationCodeableConcept" in res:
        codings = r.codings("medicationCodeableConcept", res["medicationCodeableConcept"])
    elif "medicationReference" in res:
        ref = res["medicationReference"]
        target = ref.get("reference") if isinstance(ref, Mapping) else None
        med = medications.get(str(target)) if target else None
        if med is None:
            raise r.fail("medicationReference.reference", "does not resolve to a Medication in the bundle")
        codings = r.codings("medicationReference(Medication.code)", med.get("code"))
    else:
        raise r.fail("medication[x]", "is required (medicationCodeableConcept or medicationReference)")
    if rtype == "MedicationRequest":
        start = r.moment("authoredOn")
        validity = res.get("dispenseRequest", {}).get("validityPeriod") if isinstance(
            res.get("dispenseRequest"), Mapping
        ) else None
        end = None
        if isinstance(validity, Mapping) and validity.get("end"):
            try:
                end = parse_moment(validity["end"])
            except BadTime as exc:
                raise r.fail("dispenseRequest.validityPeriod.end", str(exc)) from None
    else:
        start, end = r.period("effectivePeriod")
        if start is None:
            start = r.moment("effectiveDateTime")
    return Medication(
        codings=codings,
        status=r.plain_status(required=True),
        start=start,
        end=end,
        resource_type=rtype,
        source_id=_id(res),
    )


def read_observation(res: Resource, *, source: str | None) -> list[Observation | ClinicalFact]:
    """An Observation; a panel with components becomes one observation per component."""
    r = ResourceReader(res, source=source)
    codings = r.codings("code", res.get("code"))
    status = r.plain_status(required=True)
    effective = r.moment("effectiveDateTime") or r.period("effectivePeriod")[0] or r.moment("issued")
    fact_codes = [c.code for c in codings if c.system == CodeSystem.CLINICAL_FACT]
    if fact_codes:
        return [
            ClinicalFact(
                kind=fact_codes[0],
                effective=effective,
                value_string=_fact_word(r, res.get("valueString")),
                quantity=r.quantity("valueQuantity"),
                source_id=_id(res),
            )
        ]
    out: list[Observation | ClinicalFact] = []
    components = res.get("component")
    has_value = any(k.startswith("value") for k in res)
    if has_value or not components:
        out.append(_observation_value(r, res, codings, status, effective, prefix=""))
    if isinstance(components, list):
        for i, comp in enumerate(components):
            if not isinstance(comp, Mapping):
                raise r.fail(f"component[{i}]", "must be an object")
            comp_codings = r.codings(f"component[{i}].code", comp.get("code"))
            out.append(_observation_value(r, comp, comp_codings, status, effective, prefix=f"component[{i}]."))
    elif components is not None:
        raise r.fail("component", "must be a list")
    return out


_FACT_WORD = re.compile(r"^[A-Za-z][A-Za-z _-]{0,31}$")


def _fact_word(r: ResourceReader, value: Any) -> str | None:
    """A clinical fact's valueString is a code word (e.g. the cleared intensity), never free text."""
    if value is None:
        return None
    if not isinstance(value, str) or not _FACT_WORD.match(value.strip()):
        raise r.fail("valueString", "must be a short code word such as 'vigorous'")
    return value.strip().lower()


def _observation_value(
    r: ResourceReader,
    holder: Resource,
    codings: tuple[Coding, ...],
    status: str | None,
    effective: Moment | None,
    *,
    prefix: str,
) -> Observation:
    quantity = None
    if holder.get("valueQuantity") is not None:
        quantity = quantity_of(
            holder["valueQuantity"], lambda problem, sub="": r.fail(f"{prefix}valueQuantity{sub}", problem)
        )
    value_coding = None
    if holder.get("valueCodeableConcept") is not None:
        found = r.codings(f"{prefix}valueCodeableConcept", holder["valueCodeableConcept"], required=False)
        value_coding = found[0] if found else None
    # Free-text answers (valueString) are never kept: questionnaires such as PRAPARE carry
    # addresses and names in them, and no guardrail reads free text.
    if holder.get("valueString") is not None and not isinstance(holder["valueString"], str):
        raise r.fail(f"{prefix}valueString", "must be a string")
    return Observation(
        codings=codings,
        status=status,
        effective=effective,
        quantity=quantity,
        value_coding=value_coding,
        source_id=_id(r.resource),
    )


def read_patient(res: Resource, *, source: str | None) -> tuple[PatientIdentifiers, dict[str, Any]]:
    """Identifiers (for the identifier store only) and the non-identifying demographics."""
    r = ResourceReader(res, source=source)
    pid = res.get("id")
    if not isinstance(pid, str) or not pid.strip():
        raise r.fail("id", "is required to link the patient's resources")
    birth = youngest = None
    if res.get("birthDate") is not None:
        try:
            birth, youngest = parse_date(res["birthDate"]), parse_latest_date(res["birthDate"])
        except BadTime as exc:
            raise r.fail("birthDate", str(exc)) from None
    gender = res.get("gender")
    if gender is not None and not isinstance(gender, str):
        raise r.fail("gender", "must be a code string")
    if gender is not None and gender not in {"male", "female", "other", "unknown"}:
        raise r.fail("gender", f"unknown gender code {gender!r}")
    names = tuple(_name_text(n) for n in _list(res.get("name")) if isinstance(n, Mapping))
    telecom = tuple(str(t["value"]) for t in _list(res.get("telecom")) if isinstance(t, Mapping) and t.get("value"))
    addresses = tuple(_address_text(a) for a in _list(res.get("address")) if isinstance(a, Mapping))
    numbers = tuple(
        str(i["value"]) for i in _list(res.get("identifier")) if isinstance(i, Mapping) and i.get("value")
    )
    extras: list[str] = []
    for ext in _list(res.get("extension")):
        if not isinstance(ext, Mapping):
            continue
        if isinstance(ext.get("valueString"), str):
            extras.append(ext["valueString"])
        if isinstance(ext.get("valueAddress"), Mapping):
            extras.append(_address_text(ext["valueAddress"]))
    deceased = bool(res.get("deceasedBoolean")) or res.get("deceasedDateTime") is not None
    state = next(
        (a.get("state") for a in _list(res.get("address")) if isinstance(a, Mapping) and a.get("state")), None
    )
    ids = PatientIdentifiers(
        source_id=pid.strip(),
        names=tuple(n for n in names if n) + tuple(extras),
        birth_date=birth,
        telecom=telecom,
        addresses=tuple(a for a in addresses if a),
        record_numbers=numbers,
    )
    # the clinical context takes the latest day the birthDate can mean: a year-only "2005" is 2005-12-31
    demographics = {"birth_date": youngest, "sex": gender, "deceased": deceased, "state": state}
    return ids, demographics


def _name_text(name: Mapping[str, Any]) -> str:
    if isinstance(name.get("text"), str):
        return str(name["text"])
    parts = [*_list(name.get("prefix")), *_list(name.get("given")), name.get("family"), *_list(name.get("suffix"))]
    return " ".join(str(p) for p in parts if p)


def _address_text(addr: Mapping[str, Any]) -> str:
    parts = [*_list(addr.get("line")), addr.get("city"), addr.get("state"), addr.get("postalCode")]
    return ", ".join(str(p) for p in parts if p)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _id(res: Resource) -> str | None:
    rid = res.get("id")
    return str(rid) if rid is not None else None
