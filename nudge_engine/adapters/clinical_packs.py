"""Clinical packs: each patient's clinical rows of one origin, packed for fast columnar reading.

``replace_contexts`` writes one pack per (patient, origin) in the same transaction as the rows
(``pack_rows``); ``load_clinical_rows`` reads the packs of many patients and decodes them into
:class:`ClinicalRows` with a few numpy operations, no Python object per row.

A pack is two byte strings:

- ``terms``: the distinct strings the rows use (``system|code``, statuses, units, fact kinds and
  values), joined by the ASCII unit separator (a separator inside a string is stored as U+FFFD);
- ``records``: one fixed-width record (:data:`RECORD`) per row; string fields hold the position of the
  term in ``terms`` (-1 for none), times are microseconds since the epoch.

Decoding interns the terms of all packs into one vocabulary, so value-set membership and status
tests run once per distinct string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.orm import (
    ClinicalFactRow,
    ClinicalPackRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    PatientRow,
    ProcedureRow,
)
from nudge_engine.guardrails.rows import (
    ClinicalRows,
    Coded,
    ConditionRows,
    FactRows,
    IntArray,
    Labels,
    MedicationRows,
    ObservationRows,
    ProcedureRows,
    Times,
    micros,
)

FORMAT = 1
SEPARATOR = "\x1f"
RECORD = np.dtype([
    ("table", "i1"), ("flags", "u1"), ("code", "<i4"), ("resource", "<i4"), ("s1", "<i4"), ("s2", "<i4"),
    ("vcode", "<i4"), ("t1", "<i8"), ("t2", "<i8"), ("t3", "<i8"), ("value", "<f8"),
])
CONDITION, PROCEDURE, MEDICATION, OBSERVATION, FACT = range(5)
# flags: bit k (k = 0, 1, 2) time k present; bit k + 3 time k date-only


class _Packer:
    def __init__(self) -> None:
        self.terms: dict[str, int] = {}
        self.resources: dict[Any, int] = {}
        self.records: list[tuple[Any, ...]] = []

    def term(self, value: str | None) -> int:
        if value is None:
            return -1
        return self.terms.setdefault(value.replace(SEPARATOR, "\ufffd"), len(self.terms))

    def resource(self, table: int, resource_type: str | None, resource_id: str | None) -> int:
        grouped = resource_id is not None and table in (CONDITION, PROCEDURE, MEDICATION)  # as load_contexts
        key = (table, resource_type, resource_id) if grouped else len(self.records)
        return self.resources.setdefault(key, len(self.resources))

    def add(self, table: int, row: Mapping[str, Any], code: str | None, s1: str | None, s2: str | None, *,
            times: Sequence[str], vcode: str | None = None, value: float | None = None) -> None:
        flags, stamps = 0, [0, 0, 0]
        for k, name in enumerate(times):
            at: datetime | None = row[f"{name}_at"]
            if at is not None:
                stamps[k] = micros(at)
                flags |= 1 << k
                if row[f"{name}_date_only"]:
                    flags |= 1 << (k + 3)
        resource = self.resource(table, row.get("resource_type"), row.get("resource_id"))
        self.records.append((table, flags, self.term(code), resource, self.term(s1), self.term(s2),
                             self.term(vcode), *stamps, np.nan if value is None else value))

    def packed(self) -> tuple[int, bytes, bytes]:
        terms = SEPARATOR.join(self.terms).encode()
        return len(self.terms), terms, np.array(self.records, dtype=RECORD).tobytes()


def pack_rows(rows: Mapping[type, Sequence[Mapping[str, Any]]]) -> tuple[int, bytes, bytes]:
    """(term count, terms, records) for the row dicts of one patient and origin (``context_rows``)."""
    p = _Packer()
    for r in rows.get(ConditionRow, ()):
        p.add(CONDITION, r, f"{r['system']}|{r['code']}", r["clinical_status"], r["verification_status"],
              times=("onset", "abatement", "recorded"))
    for r in rows.get(ProcedureRow, ()):
        p.add(PROCEDURE, r, f"{r['system']}|{r['code']}", r["status"], None, times=("performed",))
    for r in rows.get(MedicationRow, ()):
        p.add(MEDICATION, r, f"{r['system']}|{r['code']}", r["status"], None, times=("start", "end"))
    for r in rows.get(ObservationRow, ()):
        vcode = f"{r['value_code_system'] or ''}|{r['value_code']}" if r["value_code"] else None
        p.add(OBSERVATION, r, f"{r['system']}|{r['code']}", r["status"], r["value_unit"], times=("effective",),
              vcode=vcode, value=r["value_num"])
    for r in rows.get(ClinicalFactRow, ()):
        p.add(FACT, r, None, r["kind"], r["value_string"], times=("effective",), value=r["value_num"])
    return p.packed()


def pack_values(patient_id: str, origin: str, rows: Mapping[type, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    count, terms, records = pack_rows(rows)
    return {"patient_id": patient_id, "origin": origin, "format": FORMAT, "term_count": count, "terms": terms,
            "records": records}


# --- reading --------------------------------------------------------------------------------------------


def load_clinical_rows(session: Session, patient_ids: Sequence[str]) -> ClinicalRows:
    """Every clinical row of ``patient_ids``, decoded from their packs; patient ``i`` is ``patient_ids[i]``."""
    ids = list(patient_ids)
    found: list[Any] = []
    conn = session.connection()
    for chunk in chunked(ids):
        found.extend(conn.execute(_PACKS_OF_PATIENTS.where(PatientRow.id.in_(chunk))).all())
    return _decoded(ids, found)


def read_clinical_rows(session: Session, where: ColumnElement[bool]) -> tuple[list[str], ClinicalRows]:
    """The patients matching ``where`` (on ``patients``) in id order, and their clinical rows: one query."""
    found = session.connection().execute(_PACKS_OF_PATIENTS.where(where)).all()
    ids = sorted({row[0] for row in found})
    return ids, _decoded(ids, found)


_PACKS_OF_PATIENTS = select(
    PatientRow.id, PatientRow.birth_year, PatientRow.birth_month, ClinicalPackRow.format,
    ClinicalPackRow.term_count, ClinicalPackRow.terms, ClinicalPackRow.records,
).outerjoin(ClinicalPackRow, ClinicalPackRow.patient_id == PatientRow.id)


def _decoded(ids: Sequence[str], found: Sequence[Any]) -> ClinicalRows:
    """Rows of ``_PACKS_OF_PATIENTS`` (one per pack, or one without a pack) -> :class:`ClinicalRows`."""
    from nudge_engine.adapters.context_store import youngest_birth_date

    row_of = {pid: i for i, pid in enumerate(ids)}
    births: list[date | None] = [None] * len(ids)
    month_end: dict[tuple[int, int], date | None] = {}
    packs: list[tuple[int, int, bytes, bytes]] = []
    for pid, year, month, fmt, count, terms, records in found:
        row = row_of[pid]
        key = (year, month)
        if key not in month_end:
            month_end[key] = youngest_birth_date(date(year, month, 1)) if year and month else None
        births[row] = month_end[key]
        if fmt is None:
            continue
        if fmt != FORMAT:
            raise ValueError(f"clinical pack format {fmt} is not {FORMAT}: run the migrations")
        packs.append((row, count, terms, records))
    return decode(len(ids), tuple(births), packs)


def decode(
    n_patients: int, births: tuple[date | None, ...], packs: Sequence[tuple[int, int, bytes, bytes]]
) -> ClinicalRows:
    """Packs as (patient row, term count, terms, records) -> one :class:`ClinicalRows`."""
    records = np.frombuffer(b"".join(bytes(p[3]) for p in packs), dtype=RECORD)
    per_pack = np.array([len(p[3]) // RECORD.itemsize for p in packs], dtype=np.int64)
    pack_of_row = np.repeat(np.arange(len(packs), dtype=np.int64), per_pack)
    patient = np.array([p[0] for p in packs], dtype=np.int64)[pack_of_row] if len(packs) else pack_of_row

    # one vocabulary over every pack's terms; id 0 is "none"
    with_terms = [p for p in packs if p[1]]
    parts = b"\x1f".join(bytes(p[2]) for p in with_terms).split(b"\x1f") if with_terms else []
    vocabulary = {term: i for i, term in enumerate(dict.fromkeys(parts), start=1)}
    global_ids = np.fromiter(map(vocabulary.__getitem__, parts), dtype=np.int64, count=len(parts))
    term_offset = np.zeros(len(packs), dtype=np.int64)
    counts = np.array([p[1] for p in packs], dtype=np.int64)
    if len(packs):
        term_offset[1:] = np.cumsum(counts)[:-1]
    words: tuple[str | None, ...] = (None, *(t.decode() for t in vocabulary))

    def resolve(field: str) -> IntArray:
        local = records[field].astype(np.int64)
        out = np.zeros(len(local), dtype=np.int64)
        has = local >= 0
        out[has] = global_ids[term_offset[pack_of_row[has]] + local[has]]
        return out

    code, s1, s2, vcode = resolve("code"), resolve("s1"), resolve("s2"), resolve("vcode")
    codings = tuple(tuple(w.split("|", 1)) if w and "|" in w else ("", w or "") for w in words)
    resource = np.unique(pack_of_row * (1 << 32) + records["resource"].astype(np.int64), return_inverse=True)[1]
    resource = resource.reshape(len(records)).astype(np.int64)
    flags = records["flags"]
    tables = records["table"]

    def times(index: IntArray, k: int) -> Times:
        f = flags[index]
        return Times(records[f"t{k + 1}"][index].astype(np.int64), (f & (1 << k)) > 0, (f & (1 << (k + 3))) > 0)

    def coded(index: IntArray) -> Coded:
        return Coded(patient[index], code[index], resource[index])

    def labels(ids: IntArray, index: IntArray) -> Labels:
        return Labels(ids[index], words)

    c, p, m, o, f = (np.flatnonzero(tables == t) for t in (CONDITION, PROCEDURE, MEDICATION, OBSERVATION, FACT))
    return ClinicalRows(
        n_patients=n_patients,
        birth_date=births,
        codings=codings,  # type: ignore[arg-type]
        conditions=ConditionRows(coded(c), labels(s1, c), labels(s2, c), times(c, 0), times(c, 1), times(c, 2)),
        procedures=ProcedureRows(coded(p), labels(s1, p), times(p, 0)),
        medications=MedicationRows(coded(m), labels(s1, m), times(m, 0), times(m, 1)),
        observations=ObservationRows(coded(o), labels(s1, o), times(o, 0), records["value"][o].astype(np.float64),
                                     labels(s2, o), labels(vcode, o)),
        facts=FactRows(patient[f], labels(s1, f), times(f, 0), labels(s2, f), records["value"][f].astype(np.float64)),
    )


def backfill_packs(session: Session, *, batch: int = 500) -> int:
    """Write the pack of every (patient, origin) that has clinical rows; returns how many were written.

    For databases whose rows predate packs (the migration that adds ``clinical_packs`` runs it).
    """
    tables = (ConditionRow, ProcedureRow, MedicationRow, ObservationRow, ClinicalFactRow)
    ids = list(session.scalars(select(PatientRow.id).order_by(PatientRow.id)))
    written = 0
    for chunk in chunked(ids, batch):
        grouped: dict[tuple[str, str], dict[type, list[dict[str, Any]]]] = {}
        for table in tables:
            for row in session.execute(select(table.__table__).where(table.patient_id.in_(chunk))).mappings():
                grouped.setdefault((row["patient_id"], row["origin"]), {}).setdefault(table, []).append(dict(row))
        if grouped:
            session.execute(insert(ClinicalPackRow),
                            [pack_values(pid, origin, rows) for (pid, origin), rows in grouped.items()])
            written += len(grouped)
    return written
