"""Clinical context between domain objects and rows: write a patient's context, read it back.

Rows are one per coding of each resource, so the batch build can load columns with plain
SELECTs. Birth dates are kept as year and month only; the context read back uses the last day of
the birth month, the youngest age the patient can have (fail closed for minimum-age rules).
"""

from __future__ import annotations

import calendar
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import bulk_insert, chunked
from nudge_engine.adapters.clinical_packs import pack_values
from nudge_engine.adapters.orm import (
    ClinicalFactRow,
    ClinicalPackRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    PatientRow,
    ProcedureRow,
    new_id,
)
from nudge_engine.domain.context import (
    ClinicalFact,
    Coding,
    Condition,
    Medication,
    Moment,
    Observation,
    PatientContext,
    Procedure,
    Quantity,
)

CONTEXT_TABLES = (ConditionRow, ProcedureRow, MedicationRow, ObservationRow, ClinicalFactRow)


def context_digest(context: PatientContext, *, timezone: str | None, deceased: bool) -> str:
    """A stable fingerprint of everything stored for a patient's context (re-import is a no-op)."""
    clinical = PatientContext(
        birth_date=youngest_birth_date(context.birth_date),
        sex=context.sex,
        conditions=context.conditions,
        procedures=context.procedures,
        medications=context.medications,
        observations=context.observations,
        facts=context.facts,
    )
    return hashlib.sha256(repr((clinical, timezone, deceased)).encode()).hexdigest()


def youngest_birth_date(birth: date | None) -> date | None:
    if birth is None:
        return None
    return date(birth.year, birth.month, calendar.monthrange(birth.year, birth.month)[1])


def _m(moment: Moment | None) -> tuple[Any, bool]:
    return (moment.at, moment.date_only) if moment else (None, False)


def context_rows(patient_id: str, ctx: PatientContext, *, origin: str) -> dict[type, list[dict[str, Any]]]:
    """Row dicts per table for one patient's context (ready for bulk insert)."""
    rows: dict[type, list[dict[str, Any]]] = defaultdict(list)
    base = {"patient_id": patient_id, "origin": origin}
    for c in ctx.conditions:
        onset, onset_d = _m(c.onset)
        abate, abate_d = _m(c.abatement)
        rec, rec_d = _m(c.recorded)
        for cd in c.codings:
            rows[ConditionRow].append(
                {"id": new_id(), **base, "resource_id": c.source_id, "system": cd.system,
                 "code": cd.code, "display": _short(cd.display), "clinical_status": c.clinical_status,
                 "verification_status": c.verification_status, "onset_at": onset, "onset_date_only": onset_d,
                 "abatement_at": abate, "abatement_date_only": abate_d, "recorded_at": rec,
                 "recorded_date_only": rec_d}
            )
    for p in ctx.procedures:
        at, d = _m(p.performed)
        for cd in p.codings:
            rows[ProcedureRow].append(
                {"id": new_id(), **base, "resource_id": p.source_id, "system": cd.system,
                 "code": cd.code, "display": _short(cd.display), "status": p.status, "performed_at": at,
                 "performed_date_only": d}
            )
    for m in ctx.medications:
        start, start_d = _m(m.start)
        end, end_d = _m(m.end)
        for cd in m.codings:
            rows[MedicationRow].append(
                {"id": new_id(), **base, "resource_id": m.source_id,
                 "resource_type": m.resource_type, "system": cd.system, "code": cd.code,
                 "display": _short(cd.display), "status": m.status, "start_at": start,
                 "start_date_only": start_d, "end_at": end, "end_date_only": end_d}
            )
    for o in ctx.observations:
        at, d = _m(o.effective)
        for cd in o.codings:
            rows[ObservationRow].append(
                {"id": new_id(), **base, "resource_id": o.source_id, "system": cd.system,
                 "code": cd.code, "display": _short(cd.display), "status": o.status, "effective_at": at,
                 "effective_date_only": d,
                 "value_num": o.quantity.value if o.quantity else None,
                 "value_unit": o.quantity.unit if o.quantity else None,
                 "value_code_system": o.value_coding.system if o.value_coding else None,
                 "value_code": o.value_coding.code if o.value_coding else None,
                 "value_string": _short(o.value_string)}
            )
    for f in ctx.facts:
        at, d = _m(f.effective)
        rows[ClinicalFactRow].append(
            {"id": new_id(), **base, "resource_id": f.source_id, "kind": f.kind,
             "effective_at": at, "effective_date_only": d, "value_string": _short(f.value_string),
             "value_num": f.quantity.value if f.quantity else None,
             "value_unit": f.quantity.unit if f.quantity else None}
        )
    return rows


def _short(text: str | None) -> str | None:
    return text[:256] if text else text


def replace_contexts(
    session: Session, items: Sequence[tuple[str, PatientContext]], *, origin: str, all_origins: bool = False
) -> None:
    """Replace the clinical rows of each patient written by ``origin`` (or by every origin)."""
    ids = [pid for pid, _ in items]
    for table in (*CONTEXT_TABLES, ClinicalPackRow):
        for chunk in chunked(ids):
            stmt = delete(table).where(table.patient_id.in_(chunk))
            if not all_origins:
                stmt = stmt.where(table.origin == origin)
            session.execute(stmt)
    merged: dict[type, list[dict[str, Any]]] = defaultdict(list)
    packs: list[dict[str, Any]] = []
    for pid, ctx in items:
        rows_of_patient = context_rows(pid, ctx, origin=origin)
        for row_type, rows in rows_of_patient.items():
            merged[row_type].extend(rows)
        packs.append(pack_values(pid, origin, rows_of_patient))
    for row_type, rows in merged.items():
        bulk_insert(session, row_type, rows)
    bulk_insert(session, ClinicalPackRow, packs)


def load_contexts(session: Session | Connection, patient_ids: Sequence[str]) -> dict[str, PatientContext]:
    """Read the stored contexts of the given patients (missing patients are absent from the result), through a
    session or a plain connection (Core statements only)."""
    out: dict[str, dict[str, list[Any]]] = {}
    demo: dict[str, tuple[date | None, str | None]] = {}
    for chunk in chunked(list(patient_ids)):
        for row in session.execute(
            select(PatientRow.id, PatientRow.birth_year, PatientRow.birth_month, PatientRow.sex).where(
                PatientRow.id.in_(chunk)
            )
        ):
            born = (
                youngest_birth_date(date(row.birth_year, row.birth_month, 1))
                if row.birth_year and row.birth_month else None
            )
            demo[row.id] = (born, row.sex)
            out[row.id] = defaultdict(list)
        _collect(session, chunk, out)
    return {
        pid: PatientContext(
            birth_date=demo[pid][0],
            sex=demo[pid][1],
            conditions=_group(parts["conditions"]),
            procedures=_group(parts["procedures"]),
            medications=_group(parts["medications"]),
            observations=tuple(parts["observations"]),
            facts=tuple(parts["facts"]),
        )
        for pid, parts in out.items()
    }


def _group(items: Iterable[tuple[tuple[str | None, ...], Any]]) -> tuple[Any, ...]:
    """Merge rows of the same resource (one per coding) back into one object with all codings.

    The key is (origin, resource type, resource id): MedicationStatement/1 and MedicationRequest/1 are two
    resources, and so are the rows of two origins (each origin has its own pack, ``clinical_packs``).
    """
    merged: dict[Any, Any] = {}
    for key, obj in items:
        k = key if key[-1] is not None else id(obj)
        if k in merged:
            merged[k] = _with_codings(merged[k], merged[k].codings + obj.codings)
        else:
            merged[k] = obj
    return tuple(merged.values())


def _with_codings(obj: Any, codings: tuple[Coding, ...]) -> Any:
    from dataclasses import replace

    return replace(obj, codings=codings)


def _mo(at: Any, date_only: bool) -> Moment | None:
    return Moment(at, date_only) if at is not None else None


def _collect(session: Session | Connection, chunk: Sequence[str], out: dict[str, dict[str, list[Any]]]) -> None:
    """Column selects (no ORM instances): the build loads millions of these rows."""
    c = ConditionRow
    for rc in session.execute(
        select(c.patient_id, c.origin, c.resource_id, c.system, c.code, c.display, c.clinical_status,
               c.verification_status, c.onset_at, c.onset_date_only, c.abatement_at, c.abatement_date_only,
               c.recorded_at, c.recorded_date_only).where(c.patient_id.in_(chunk))
    ):
        out[rc.patient_id]["conditions"].append(
            ((rc.origin, rc.resource_id), Condition(
                codings=(Coding(rc.system, rc.code, rc.display),), clinical_status=rc.clinical_status,
                verification_status=rc.verification_status, onset=_mo(rc.onset_at, rc.onset_date_only),
                abatement=_mo(rc.abatement_at, rc.abatement_date_only),
                recorded=_mo(rc.recorded_at, rc.recorded_date_only), source_id=rc.resource_id,
            ))
        )
    p = ProcedureRow
    for rp in session.execute(
        select(p.patient_id, p.origin, p.resource_id, p.system, p.code, p.display, p.status, p.performed_at,
               p.performed_date_only).where(p.patient_id.in_(chunk))
    ):
        out[rp.patient_id]["procedures"].append(
            ((rp.origin, rp.resource_id), Procedure(
                codings=(Coding(rp.system, rp.code, rp.display),), status=rp.status,
                performed=_mo(rp.performed_at, rp.performed_date_only), source_id=rp.resource_id,
            ))
        )
    m = MedicationRow
    for rm in session.execute(
        select(m.patient_id, m.origin, m.resource_id, m.resource_type, m.system, m.code, m.display, m.status,
               m.start_at, m.start_date_only, m.end_at, m.end_date_only).where(m.patient_id.in_(chunk))
    ):
        out[rm.patient_id]["medications"].append(
            ((rm.origin, rm.resource_type, rm.resource_id), Medication(
                codings=(Coding(rm.system, rm.code, rm.display),), status=rm.status,
                start=_mo(rm.start_at, rm.start_date_only), end=_mo(rm.end_at, rm.end_date_only),
                resource_type=rm.resource_type, source_id=rm.resource_id,
            ))
        )
    o = ObservationRow
    for ro in session.execute(
        select(o.patient_id, o.resource_id, o.system, o.code, o.display, o.status, o.effective_at,
               o.effective_date_only, o.value_num, o.value_unit, o.value_code_system, o.value_code)
        .where(o.patient_id.in_(chunk))
    ):
        out[ro.patient_id]["observations"].append(
            Observation(
                codings=(Coding(ro.system, ro.code, ro.display),), status=ro.status,
                effective=_mo(ro.effective_at, ro.effective_date_only),
                quantity=Quantity(ro.value_num, ro.value_unit) if ro.value_num is not None else None,
                value_coding=Coding(ro.value_code_system or "", ro.value_code) if ro.value_code else None,
                source_id=ro.resource_id,
            )
        )
    f = ClinicalFactRow
    for rf in session.execute(
        select(f.patient_id, f.resource_id, f.kind, f.effective_at, f.effective_date_only, f.value_string,
               f.value_num, f.value_unit).where(f.patient_id.in_(chunk))
    ):
        out[rf.patient_id]["facts"].append(
            ClinicalFact(
                kind=rf.kind, effective=_mo(rf.effective_at, rf.effective_date_only), value_string=rf.value_string,
                quantity=Quantity(rf.value_num, rf.value_unit) if rf.value_num is not None else None,
                source_id=rf.resource_id,
            )
        )
