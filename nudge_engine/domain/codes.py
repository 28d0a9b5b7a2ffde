"""Code system URIs (contract §5) and short names used in rule files and evidence."""

from __future__ import annotations

from enum import StrEnum


class CodeSystem(StrEnum):
    ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
    ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
    SNOMED = "http://snomed.info/sct"
    RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
    ATC = "http://www.whocc.no/atc"
    LOINC = "http://loinc.org"
    CLINICAL_FACT = "https://nudge-engine.dev/fhir/clinical-fact"


# Other spellings seen in the wild for the same systems.
SYSTEM_ALIASES: dict[str, CodeSystem] = {
    "http://hl7.org/fhir/sid/icd-10-pcs": CodeSystem.ICD10PCS,
    "http://www.cms.gov/medicare/coding/icd10": CodeSystem.ICD10PCS,
    "urn:oid:2.16.840.1.113883.6.4": CodeSystem.ICD10PCS,
    "urn:oid:2.16.840.1.113883.6.90": CodeSystem.ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": CodeSystem.SNOMED,
    "urn:oid:2.16.840.1.113883.6.88": CodeSystem.RXNORM,
    "urn:oid:2.16.840.1.113883.6.1": CodeSystem.LOINC,
    "http://snomed.info/sct/": CodeSystem.SNOMED,
    "http://loinc.org/": CodeSystem.LOINC,
}


def normalise_system(system: str | None) -> str:
    """The canonical URI for a code system, or the input unchanged when unknown."""
    if not system:
        return ""
    known = SYSTEM_ALIASES.get(system.strip().lower()) or SYSTEM_ALIASES.get(system.strip())
    if known is not None:
        return known.value
    return system.strip()


def normalise_icd10(code: str) -> str:
    """Upper-case, dots kept only after the third character (``e1165`` -> ``E11.65``)."""
    raw = code.strip().upper().replace(".", "")
    return raw if len(raw) <= 3 else f"{raw[:3]}.{raw[3:]}"


class FactKind(StrEnum):
    EXERCISE_CLEARANCE = "exercise-clearance"
    FLUID_RESTRICTION = "fluid-restriction"
