"""FHIR R4 Bundles (and bulk NDJSON) into :class:`PatientRecord` objects.

Resources are grouped by the patient their ``subject`` references (``Patient/ID`` or the Patient
entry's ``fullUrl``). Types the engine does not use (Encounter, Claim ...) are counted and skipped.
Any malformed resource raises :class:`InvalidResource` and nothing of the bundle is returned; so does
a (resourceType, id) given twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from nudge_engine.domain.context import (
    ClinicalFact,
    Condition,
    Medication,
    Observation,
    PatientContext,
    PatientIdentifiers,
    PatientRecord,
    Procedure,
)
from nudge_engine.domain.errors import InvalidInput, InvalidResource
from nudge_engine.fhir.resources import (
    read_condition,
    read_medication,
    read_observation,
    read_patient,
    read_procedure,
)
from nudge_engine.fhir.timezones import timezone_for_state

CLINICAL_TYPES = frozenset({"Condition", "Procedure", "MedicationStatement", "MedicationRequest", "Observation"})


@dataclass
class ParsedBundle:
    """The patients of one bundle or NDJSON file, and what was skipped."""

    patients: list[PatientRecord]
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class _Builder:
    identifiers: PatientIdentifiers
    demographics: dict[str, Any]
    has_patient: bool = True
    conditions: list[Condition] = field(default_factory=list)
    procedures: list[Procedure] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    facts: list[ClinicalFact] = field(default_factory=list)

    def build(self) -> PatientRecord:
        birth: date | None = self.demographics.get("birth_date")
        ctx = PatientContext(
            birth_date=birth,
            sex=self.demographics.get("sex"),
            conditions=tuple(self.conditions),
            procedures=tuple(self.procedures),
            medications=tuple(self.medications),
            observations=tuple(self.observations),
            facts=tuple(self.facts),
        )
        return PatientRecord(
            identifiers=self.identifiers,
            context=ctx,
            deceased=bool(self.demographics.get("deceased")),
            timezone=timezone_for_state(self.demographics.get("state")),
            has_demographics=self.has_patient,
        )


def parse_bundle(doc: Any, *, source: str | None = None, patient_hint: str | None = None) -> ParsedBundle:
    """Parse one Bundle document. ``patient_hint`` names the patient when the bundle has no Patient."""
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"{source or 'input'}: expected a JSON object (a FHIR Bundle)")
    if doc.get("resourceType") != "Bundle":
        raise InvalidResource(
            resource=str(doc.get("resourceType", "?")), field="resourceType",
            problem="expected 'Bundle'", source=source,
        )
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidResource(resource="Bundle", field="entry", problem="must be a list", source=source)
    resources: list[tuple[str | None, Mapping[str, Any]]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            raise InvalidResource(
                resource="Bundle", field=f"entry[{i}].resource", problem="must be an object", source=source
            )
        full_url = entry.get("fullUrl")
        resources.append((full_url if isinstance(full_url, str) else None, entry["resource"]))
    return parse_resources(resources, source=source, patient_hint=patient_hint)


def parse_resources(
    resources: Iterable[tuple[str | None, Mapping[str, Any]]],
    *,
    source: str | None = None,
    patient_hint: str | None = None,
) -> ParsedBundle:
    """Group loose resources by patient and parse them."""
    items = list(resources)
    skipped: Counter[str] = Counter()
    builders: dict[str, _Builder] = {}
    aliases: dict[str, str] = {}
    medications: dict[str, Mapping[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for full_url, res in items:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            raise InvalidResource(resource="?", field="resourceType", problem="is required", source=source)
        rid = res.get("id")
        if rid is not None:
            type_and_id = (rtype, str(rid))
            if type_and_id in seen:  # two versions of one resource: no way to tell which one is meant
                raise InvalidResource(resource=f"{rtype}/{rid}", field="id", problem="appears more than once",
                                      source=source)
            seen.add(type_and_id)
        if rtype == "Patient":
            ids, demo = read_patient(res, source=source)
            builders[ids.source_id] = _Builder(ids, demo)
            aliases[f"Patient/{ids.source_id}"] = ids.source_id
            if full_url:
                aliases[full_url] = ids.source_id
        elif rtype == "Medication":
            for key in (full_url, f"Medication/{res.get('id')}", f"#{res.get('id')}"):
                if key:
                    medications[key] = res
    if not builders and patient_hint is not None:
        builders[patient_hint] = _Builder(PatientIdentifiers(source_id=patient_hint), {}, has_patient=False)
    for _, res in items:
        rtype = str(res["resourceType"])
        if rtype not in CLINICAL_TYPES:
            if rtype not in {"Patient", "Medication"}:
                skipped[rtype] += 1
            continue
        builder = builders[_owner(res, aliases, builders, source, patient_hint)]
        if rtype == "Condition":
            builder.conditions.append(read_condition(res, source=source))
        elif rtype == "Procedure":
            builder.procedures.append(read_procedure(res, source=source))
        elif rtype in {"MedicationStatement", "MedicationRequest"}:
            contained = {f"#{c.get('id')}": c for c in _contained(res, source) if isinstance(c, Mapping)}
            builder.medications.append(
                read_medication(res, source=source, medications={**medications, **contained})
            )
        else:
            for item in read_observation(res, source=source):
                if isinstance(item, ClinicalFact):
                    builder.facts.append(item)
                else:
                    builder.observations.append(item)
    return ParsedBundle([b.build() for b in builders.values()], skipped)


def _contained(res: Mapping[str, Any], source: str | None) -> list[Any]:
    contained = res.get("contained", [])
    if not isinstance(contained, list):
        raise InvalidResource(resource=f"{res.get('resourceType')}/{res.get('id', '?')}", field="contained",
                              problem="must be a list", source=source)
    return contained


def _owner(
    res: Mapping[str, Any], aliases: Mapping[str, str], builders: Mapping[str, _Builder], source: str | None,
    patient_hint: str | None,
) -> str:
    """The patient a clinical resource belongs to: the Patient its reference names.

    Without a Patient in the bundle the reference must name the patient the caller named (``patient_hint``,
    the id in the request path), as ``Patient/<id>`` or an absolute URL ending so; or be absent.
    """
    label = f"{res.get('resourceType')}/{res.get('id', '?')}"
    field = "subject.reference" if "subject" in res or "patient" not in res else "patient.reference"
    subject = res.get("subject") or res.get("patient")
    ref = subject.get("reference") if isinstance(subject, Mapping) else None
    if ref is not None and not isinstance(ref, str):
        raise InvalidResource(resource=label, field=field, problem="must be a string", source=source)
    if ref is not None and ref in aliases:
        return aliases[ref]
    if ref is None and len(builders) == 1:
        return next(iter(builders))
    if ref is None:
        raise InvalidResource(resource=label, field=field, problem="is required", source=source)
    if not aliases and patient_hint is not None and patient_hint in builders:
        if ref == f"Patient/{patient_hint}" or ref.endswith(f"/Patient/{patient_hint}"):
            return patient_hint
        raise InvalidResource(resource=label, field=field, problem="does not name the patient of the request",
                              source=source)
    raise InvalidResource(resource=label, field=field, problem="does not resolve to a Patient in the bundle",
                          source=source)


def read_bundle_file(path: Path, *, tolerate_non_bundle: bool = False) -> ParsedBundle | None:
    """Parse a ``.json`` Bundle or an ``.ndjson`` file (resources or Bundles, one per line).

    With ``tolerate_non_bundle``, a JSON document that is no FHIR resource at all (no
    ``resourceType``, such as Synthea's run metadata) gives None instead of an error.
    """
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{name}: cannot read file ({exc.__class__.__name__})") from None
    if path.suffix == ".ndjson":
        return _read_ndjson(text, name)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if tolerate_non_bundle and isinstance(doc, Mapping) and "resourceType" not in doc:
        return None
    return parse_bundle(doc, source=name)


def read_bundle(path: Path) -> ParsedBundle:
    """Like :func:`read_bundle_file`, for callers that need a bundle (``rules explain``)."""
    parsed = read_bundle_file(path)
    if parsed is None:  # pragma: no cover - only with tolerate_non_bundle
        raise InvalidInput(f"{path.name}: not a FHIR Bundle")
    return parsed


def _read_ndjson(text: str, name: str) -> ParsedBundle:
    loose: list[tuple[str | None, Mapping[str, Any]]] = []
    result = ParsedBundle([])
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidInput(f"{name}: line {lineno} is not valid JSON") from None
        if not isinstance(doc, Mapping):
            raise InvalidInput(f"{name}: line {lineno} is not a JSON object")
        if doc.get("resourceType") == "Bundle":
            parsed = parse_bundle(doc, source=f"{name}:{lineno}")
            result.patients.extend(parsed.patients)
            result.skipped.update(parsed.skipped)
        else:
            loose.append((None, doc))
    if loose:
        parsed = parse_resources(loose, source=name)
        result.patients.extend(parsed.patients)
        result.skipped.update(parsed.skipped)
    return result
