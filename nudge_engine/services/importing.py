"""Import patients (FHIR R4 Bundles, NDJSON, Synthea CSV, synthetic cohorts) into the store.

Each source unit (one bundle file, one NDJSON file, one CSV folder, one cohort batch) is one
transaction: parsed completely first, then written with its audit records, or not at all.
Re-importing unchanged data changes nothing: a patient whose context fingerprint is unchanged is
skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from nudge_engine.adapters.bulk import bulk_insert
from nudge_engine.adapters.context_store import context_digest, replace_contexts
from nudge_engine.adapters.orm import PatientRow, new_id
from nudge_engine.adapters.orm.patients import shard_key_of
from nudge_engine.audit.trail import AuditEvent
from nudge_engine.domain.context import PatientRecord
from nudge_engine.domain.errors import InvalidInput
from nudge_engine.fhir.bundle import read_bundle_file
from nudge_engine.fhir.synthea_csv import is_synthea_csv_folder, read_synthea_csv

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.vault import IdentifierVault


Enrolment = tuple[str | None, datetime | None]  # (programme, enrolled at)


@dataclass
class ImportSummary:
    """What an import did, in counts only."""

    files: int = 0
    patients_created: int = 0
    patients_updated: int = 0
    patients_unchanged: int = 0
    skipped_resources: Counter[str] = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)

    @property
    def patients(self) -> int:
        return self.patients_created + self.patients_updated + self.patients_unchanged

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "patients": self.patients,
            "created": self.patients_created,
            "updated": self.patients_updated,
            "unchanged": self.patients_unchanged,
            "skipped_resources": dict(sorted(self.skipped_resources.items())),
            "skipped_files": self.skipped_files,
        }


@dataclass(frozen=True)
class SourceUnit:
    """One transaction's worth of input: a file or a CSV folder."""

    path: Path
    kind: str  # fhir | synthea-csv


def discover(paths: Iterable[Path], *, fmt: str = "auto") -> list[SourceUnit]:
    """Expand files and folders into source units (``fmt``: auto, fhir or synthea-csv).

    A folder is walked: every Synthea CSV folder inside it is one unit, every ``.json`` or
    ``.ndjson`` file outside such folders is one unit. A path that does not exist is an error.
    """
    if fmt not in {"auto", "fhir", "synthea-csv"}:
        raise InvalidInput(f"unknown format {fmt!r} (expected auto, fhir or synthea-csv)")
    units: list[SourceUnit] = []
    for path in paths:
        if not path.exists():
            raise InvalidInput(f"{path}: no such file or folder")
        if path.is_file():
            if fmt == "synthea-csv" or path.suffix not in {".json", ".ndjson"}:
                raise InvalidInput(f"{path}: expected a .json or .ndjson file, or a folder")
            units.append(SourceUnit(path, "fhir"))
            continue
        csv_dirs = sorted(d for d in (path, *path.rglob("*")) if is_synthea_csv_folder(d))
        if fmt != "fhir":
            units.extend(SourceUnit(d, "synthea-csv") for d in csv_dirs)
        if fmt != "synthea-csv":
            units.extend(
                SourceUnit(p, "fhir")
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in {".json", ".ndjson"} and p.parent not in csv_dirs
            )
        if fmt == "synthea-csv" and not csv_dirs:
            raise InvalidInput(f"{path}: not a Synthea CSV folder (patients.csv missing)")
    return units


class Importer:
    """Writes patient records and their audit records, one transaction per source unit."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        vault: IdentifierVault,
        audit: AuditTrail,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow_factory = uow_factory
        self._vault = vault
        self._audit = audit
        self._clock = clock

    def read_unit(self, unit: SourceUnit, summary: ImportSummary) -> list[PatientRecord] | None:
        """Parse one unit completely (raising on malformed input) before anything is written."""
        if unit.kind == "synthea-csv":
            return read_synthea_csv(unit.path)
        parsed = read_bundle_file(unit.path, tolerate_non_bundle=True)
        if parsed is None:
            summary.skipped_files.append(unit.path.name)
            return None
        summary.skipped_resources.update(parsed.skipped)
        return parsed.patients

    def import_units(
        self, units: Sequence[SourceUnit], *, progress: Callable[[int], None] | None = None
    ) -> ImportSummary:
        summary = ImportSummary()
        for unit in units:
            records = self.read_unit(unit, summary)
            if records is not None:
                summary.files += 1
                self.store(records, summary=summary, source=unit.kind)
            if progress:
                progress(1)
        return summary

    def store(
        self,
        records: Sequence[PatientRecord],
        *,
        summary: ImportSummary,
        source: str,
        enrolment: Mapping[str, Enrolment] | None = None,
        replace_all_origins: bool = False,
    ) -> list[str]:
        """Store one batch in one transaction; returns the surrogate ids in input order.

        ``source`` is the origin of the context rows (fhir, synthea-csv, api, synthetic); with
        ``replace_all_origins`` the patient's whole context is replaced (``PUT .../context``).
        """
        now = self._clock()
        with self._uow_factory() as uow:
            ids = self.store_in(
                uow.session, records, summary=summary, source=source, now=now, enrolment=enrolment,
                replace_all_origins=replace_all_origins,
            )
            uow.commit()
        return ids

    def store_in(
        self,
        session: Session,
        records: Sequence[PatientRecord],
        *,
        summary: ImportSummary,
        source: str,
        now: datetime,
        enrolment: Mapping[str, Enrolment] | None = None,
        replace_all_origins: bool = False,
        actor_role: str = "system",
        actor_id: str | None = None,
    ) -> list[str]:
        """Like :meth:`store`, inside the caller's unit of work (which commits); audited as the given actor.

        ``enrolment`` maps a source id to the programme and enrolment time of a *new* patient
        (default: no programme, enrolled now).
        """
        known = self._vault.find_patients(session, [r.identifiers.source_id for r in records])
        existing = {
            row.id: dict(row.context_digests or {})
            for row in session.execute(
                select(PatientRow.id, PatientRow.context_digests).where(PatientRow.id.in_(list(known.values())))
            )
        } if known else {}
        new_rows: list[dict[str, object]] = []
        changed: list[tuple[str, PatientRecord]] = []
        events: list[AuditEvent] = []
        ids: list[str] = []
        seen: dict[str, str] = {}
        identified: set[str] = set()  # known patients whose stored identifiers stay (no Patient in the source)
        for record in records:
            source_id = record.identifiers.source_id
            digest = context_digest(record.context, timezone=record.timezone, deceased=record.deceased)
            pid = known.get(source_id) or seen.get(source_id)
            born = record.context.birth_date
            if pid is None:
                programme, enrolled_at = (enrolment or {}).get(source_id, (None, None))
                pid = new_id()
                seen[source_id] = pid
                new_rows.append({
                    "id": pid, "shard_key": shard_key_of(pid), "created_at": now,
                    "birth_year": born.year if born else None, "birth_month": born.month if born else None,
                    "sex": record.context.sex,
                    "deceased": record.deceased, "timezone": record.timezone or "UTC", "locale": "en-US",
                    "programme": programme, "enrolled_at": enrolled_at or now,
                    "source": source, "context_version": 1, "context_updated_at": now,
                    "context_digests": {source: digest},
                })
                changed.append((pid, record))
                summary.patients_created += 1
                events.append(AuditEvent("enrolled", actor_role, actor_id=actor_id, patient_ref=pid,
                                         details={"origin": source}))
            elif existing.get(pid, {}).get(source) == digest and not replace_all_origins:
                summary.patients_unchanged += 1
            else:
                digests = {} if replace_all_origins else existing.get(pid, {})
                digests = {**digests, source: digest}
                demographics: dict[str, object] = {
                    "birth_year": born.year if born else None, "birth_month": born.month if born else None,
                    "sex": record.context.sex, "deceased": record.deceased,
                } if record.has_demographics else {}  # no Patient in the source: keep what is stored
                if record.timezone is not None:  # a Patient without an address keeps the stored time zone
                    demographics["timezone"] = record.timezone
                session.execute(
                    update(PatientRow).where(PatientRow.id == pid).values(
                        **demographics, context_version=PatientRow.context_version + 1,
                        context_updated_at=now, context_digests=digests,
                    )
                )
                existing[pid] = digests
                changed.append((pid, record))
                if not record.has_demographics:
                    identified.add(pid)
                summary.patients_updated += 1
            ids.append(pid)
        bulk_insert(session, PatientRow, new_rows)
        if changed:
            replace_contexts(
                session, [(pid, r.context) for pid, r in changed], origin=source, all_origins=replace_all_origins
            )
            self._vault.enrol_many(
                session, [(pid, r.identifiers) for pid, r in changed if pid not in identified], now=now
            )
            events.extend(
                AuditEvent(
                    "context_replaced", actor_role, actor_id=actor_id, patient_ref=pid,
                    details={
                        "origin": source,
                        "conditions": len(r.context.conditions), "medications": len(r.context.medications),
                        "observations": len(r.context.observations), "procedures": len(r.context.procedures),
                    },
                )
                for pid, r in changed
            )
        if events:
            self._audit.append(session, events, now=now)
        return ids
