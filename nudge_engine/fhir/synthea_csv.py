"""Synthea's CSV export (a folder with patients.csv, conditions.csv, medications.csv,
observations*.csv, procedures.csv) into :class:`PatientRecord` objects.

Synthea codes conditions and procedures in SNOMED CT, medications in RxNorm (clinical-drug codes),
observations in LOINC. A row with a ``STOP`` date is a resolved condition or a stopped medication.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import (
    Coding,
    Condition,
    Medication,
    Moment,
    Observation,
    PatientContext,
    PatientIdentifiers,
    PatientRecord,
    Procedure,
    Quantity,
)
from nudge_engine.domain.errors import InvalidInput
from nudge_engine.fhir.timeparse import BadTime, parse_moment
from nudge_engine.fhir.timezones import timezone_for_state

REQUIRED_FILES = ("patients.csv",)
_GENDERS = {"M": "male", "F": "female"}


class CsvRowError(InvalidInput):
    """A CSV row is malformed; names file, line and column."""

    def __init__(self, path: Path, line: int, column: str, problem: str) -> None:
        super().__init__(f"{path.parent.name}/{path.name}: line {line}: field '{column}': {problem}")


def is_synthea_csv_folder(path: Path) -> bool:
    return path.is_dir() and (path / "patients.csv").is_file()


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, row


def _moment(path: Path, line: int, row: Mapping[str, str], column: str, *, required: bool) -> Moment | None:
    raw = (row.get(column) or "").strip()
    if not raw:
        if required:
            raise CsvRowError(path, line, column, "is required")
        return None
    try:
        return parse_moment(raw, naive_zone=UTC)  # Synthea's CSV times are UTC (written with a Z)
    except BadTime as exc:
        raise CsvRowError(path, line, column, str(exc)) from None


def _code(path: Path, line: int, row: Mapping[str, str], system: str) -> tuple[Coding, ...]:
    code = (row.get("CODE") or "").strip()
    if not code:
        raise CsvRowError(path, line, "CODE", "is required")
    return (Coding(system, code, (row.get("DESCRIPTION") or None)),)


def read_synthea_csv(folder: Path) -> list[PatientRecord]:
    """All patients of one Synthea CSV folder; raises :class:`CsvRowError` on the first bad row."""
    if not is_synthea_csv_folder(folder):
        raise InvalidInput(f"{folder.name}: not a Synthea CSV folder (patients.csv missing)")
    conditions: dict[str, list[Condition]] = defaultdict(list)
    medications: dict[str, list[Medication]] = defaultdict(list)
    observations: dict[str, list[Observation]] = defaultdict(list)
    procedures: dict[str, list[Procedure]] = defaultdict(list)

    path = folder / "conditions.csv"
    if path.exists():
        for line, row in _rows(path):
            stop = _moment(path, line, row, "STOP", required=False)
            conditions[row["PATIENT"]].append(
                Condition(
                    codings=_code(path, line, row, CodeSystem.SNOMED),
                    clinical_status="resolved" if stop else "active",
                    verification_status="confirmed",
                    onset=_moment(path, line, row, "START", required=True),
                    abatement=stop,
                )
            )
    path = folder / "medications.csv"
    if path.exists():
        for line, row in _rows(path):
            stop = _moment(path, line, row, "STOP", required=False)
            medications[row["PATIENT"]].append(
                Medication(
                    codings=_code(path, line, row, CodeSystem.RXNORM),
                    status="stopped" if stop else "active",
                    start=_moment(path, line, row, "START", required=True),
                    end=stop,
                    resource_type="MedicationRequest",
                )
            )
    path = folder / "procedures.csv"
    if path.exists():
        for line, row in _rows(path):
            column = "START" if "START" in row else "DATE"
            procedures[row["PATIENT"]].append(
                Procedure(
                    codings=_code(path, line, row, CodeSystem.SNOMED),
                    status="completed",
                    performed=_moment(path, line, row, column, required=True),
                )
            )
    for path in sorted(folder.glob("observations*.csv")):
        for line, row in _rows(path):
            observations[row["PATIENT"]].append(_observation(path, line, row))

    records: list[PatientRecord] = []
    path = folder / "patients.csv"
    for line, row in _rows(path):
        pid = (row.get("Id") or "").strip()
        if not pid:
            raise CsvRowError(path, line, "Id", "is required")
        birth = _moment(path, line, row, "BIRTHDATE", required=True)
        gender = (row.get("GENDER") or "").strip()
        if gender and gender not in _GENDERS:
            raise CsvRowError(path, line, "GENDER", f"unknown value {gender!r}")
        identifiers = PatientIdentifiers(
            source_id=pid,
            names=tuple(
                n for n in (
                    " ".join(p for p in (row.get("PREFIX"), row.get("FIRST"), row.get("LAST"), row.get("SUFFIX")) if p),
                    row.get("MAIDEN") or "",
                ) if n
            ),
            birth_date=birth.day if birth else None,
            addresses=tuple(
                a for a in (
                    ", ".join(p for p in (row.get("ADDRESS"), row.get("CITY"), row.get("STATE"), row.get("ZIP")) if p),
                    f"{row.get('LAT', '')},{row.get('LON', '')}" if row.get("LAT") else "",
                    row.get("BIRTHPLACE") or "",
                ) if a
            ),
            record_numbers=tuple(v for k in ("SSN", "DRIVERS", "PASSPORT") if (v := (row.get(k) or "").strip())),
        )
        context = PatientContext(
            birth_date=birth.day if birth else None,
            sex=_GENDERS.get(gender),
            conditions=tuple(conditions.pop(pid, ())),
            procedures=tuple(procedures.pop(pid, ())),
            medications=tuple(medications.pop(pid, ())),
            observations=tuple(observations.pop(pid, ())),
        )
        records.append(
            PatientRecord(
                identifiers=identifiers,
                context=context,
                deceased=bool((row.get("DEATHDATE") or "").strip()),
                timezone=timezone_for_state(row.get("STATE")),
            )
        )
    orphans = {k for d in (conditions, medications, procedures, observations) for k in d}
    if orphans:
        raise InvalidInput(
            f"{folder.name}: {len(orphans)} patient reference(s) in clinical files are not in patients.csv"
        )
    return records


def _observation(path: Path, line: int, row: Mapping[str, str]) -> Observation:
    """A numeric observation keeps its value; text answers are dropped (they can hold addresses)."""
    raw = (row.get("VALUE") or "").strip()
    kind = (row.get("TYPE") or "").strip()
    quantity = None
    if kind == "numeric" and raw:
        try:
            quantity = Quantity(float(raw), (row.get("UNITS") or None))
        except ValueError:
            raise CsvRowError(path, line, "VALUE", "not a number") from None
    return Observation(
        codings=_code(path, line, row, CodeSystem.LOINC),
        status="final",
        effective=_moment(path, line, row, "DATE", required=True),
        quantity=quantity,
    )
