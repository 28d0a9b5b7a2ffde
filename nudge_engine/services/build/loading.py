"""Load one shard of patients from the database into the columns planning needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import JSON, ColumnElement, String, any_, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.clinical_packs import load_clinical_rows
from nudge_engine.adapters.driver_statements import DriverQuery
from nudge_engine.adapters.orm import PatientEventRow, PatientPreferenceRow, PatientRow, ReviewItemRow
from nudge_engine.adapters.orm.feedback import PatientNudgeOutcomeRow
from nudge_engine.adapters.shards import ShardClaim
from nudge_engine.adapters.sql_functions import instants_us, json_number, stored_instant
from nudge_engine.guardrails.rows import ClinicalRows
from nudge_engine.personalization.batch import PatientBatch, PatientPrefs
from nudge_engine.personalization.catalog import CATEGORIES, Catalog
from nudge_engine.personalization.events import EventColumns
from nudge_engine.services.build.flags import segment_flags_from_rows
from nudge_engine.services.feedback import suppressed_pairs


@dataclass(frozen=True)
class LoadedShard:
    patient_ids: list[str]
    context_versions: list[int]
    clinical: ClinicalRows  # patient i is patient_ids[i]
    batch: PatientBatch


def _ids_in(dialect: str) -> ColumnElement[bool]:
    """``patient_events.patient_id`` among the ids of one bound value (``ids``): a JSON array on SQLite, an array
    on PostgreSQL, so that the statement's text is the same for any number of ids and compiles once.

    Not the JSON array on both (as the serve's claim does with its few ids, ``services.delivery``): for 500 ids
    PostgreSQL planned ``IN (SELECT value FROM json_array_elements_text(...))`` as a join on another index, filtering
    the times row by row (EXPLAIN ANALYZE, 30,000 rows: 47.6 ms), where ``= ANY`` scans the primary key (19.4 ms)."""
    patient_id = PatientEventRow.patient_id
    if dialect == "postgresql":
        return patient_id == any_(bindparam("ids", type_=ARRAY(String)))
    return patient_id.in_(select(func.json_each(bindparam("ids", type_=JSON)).table_valued("value").c.value))


def _events_in_window(dialect: str) -> DriverQuery:
    """A chunk of patients' events since ``since`` (any type) or ``since_delivered`` (deliveries), up to ``as_of``:
    patient, type, nudge, the stored time (``stored_instant``) and an activity event's minutes. Plain values
    from SQL, one index range per patient (patient_id, occurred_at), and no per-row objects."""
    e = PatientEventRow
    return DriverQuery(
        select(e.patient_id, e.type, e.nudge_id, stored_instant(e.occurred_at),
               case((e.type == "activity", json_number(e.properties, "minutes"))))
        .where(_ids_in(dialect), e.occurred_at <= bindparam("as_of"),
               (e.occurred_at >= bindparam("since"))
               | ((e.type == "delivered") & (e.occurred_at >= bindparam("since_delivered"))))
    )


# On the driver's cursor: a shard's events are most of what a build reads (about 47 rows a patient), and
# SQLAlchemy's result rows cost as much of the worker's time as the database takes to find them.
EVENTS_IN_WINDOW = {dialect: _events_in_window(dialect) for dialect in ("sqlite", "postgresql")}


def _minutes_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def load_shard(
    session: Session, claim: ShardClaim, *, as_of: datetime, catalog: Catalog, windows: tuple[timedelta, timedelta]
) -> LoadedShard:
    """Living, not-erased patients of the shard, their context, preferences, recent events, open reviews.

    ``windows`` is how far back to read events: (every type, deliveries only) — see ``event_windows``.
    """
    every, deliveries = windows
    lo, hi = claim.key_range
    in_shard = (PatientRow.shard_key >= lo) & (PatientRow.shard_key < hi)
    patients = session.execute(
        select(PatientRow.id, PatientRow.timezone, PatientRow.locale, PatientRow.programme,
               PatientRow.enrolled_at, PatientRow.created_at, PatientRow.context_version)
        .where(in_shard, PatientRow.erased_at.is_(None), PatientRow.deceased.is_(False))
        .order_by(PatientRow.id)
    ).all()
    ids = [p.id for p in patients]
    row_of = {pid: i for i, pid in enumerate(ids)}
    n = len(ids)
    clinical = load_clinical_rows(session, ids)

    prefs = PatientPrefs.defaults(n)
    category_col = {str(c): j for j, c in enumerate(CATEGORIES)}
    pr = PatientPreferenceRow
    prefs_rows = [  # the columns only: no ORM objects, identity map or change tracking for a read-only shard
        pref for chunk in chunked(ids)
        for pref in session.execute(
            select(pr.patient_id, pr.quiet_start, pr.quiet_end, pr.snoozed_until, pr.opted_out_all,
                   pr.opted_out_categories, pr.max_per_day, pr.max_per_week).where(pr.patient_id.in_(chunk))
        )
    ]
    for pref in prefs_rows:
        i = row_of.get(pref.patient_id)
        if i is None:
            continue
        prefs.quiet_start_min[i] = _minutes_of(pref.quiet_start)
        prefs.quiet_end_min[i] = _minutes_of(pref.quiet_end)
        prefs.snoozed_until_s[i] = pref.snoozed_until.timestamp() if pref.snoozed_until else -np.inf
        prefs.opted_out_all[i] = pref.opted_out_all
        for category in pref.opted_out_categories or ():
            if category in category_col:
                prefs.opted_out_categories[i, category_col[category]] = True
        prefs.max_per_day[i] = pref.max_per_day if pref.max_per_day is not None else -1
        prefs.max_per_week[i] = pref.max_per_week if pref.max_per_week is not None else -1

    # Per-patient index look-ups (patient_id, occurred_at): a shard never scans the whole events table.
    # Plain values from SQL (stored times, minutes of activity events when a JSON number): no per-row objects.
    conn = session.connection()
    events_of = EVENTS_IN_WINDOW[conn.dialect.name]
    window = {"as_of": as_of, "since": as_of - every, "since_delivered": as_of - max(every, deliveries)}
    ev = [row for chunk in chunked(ids) for row in events_of.rows(conn, {"ids": list(chunk), **window})]
    if ev:
        patient_ids, types, nudge_ids, stamps, minutes = zip(*ev, strict=True)
        events = EventColumns.from_records(
            patient_row=list(map(row_of.__getitem__, patient_ids)), types=types, nudge_ids=nudge_ids,
            ts=instants_us(stamps) // 1_000_000, minutes=minutes, catalog=catalog,
        )
    else:
        events = EventColumns.empty()

    # Deliveries whose raw events retention folded away still hold their nudges' cooldowns (low retention
    # keeps raw events for 14 days; the catalog's cooldowns run to 90).
    o = PatientNudgeOutcomeRow
    folded = [
        row for chunk in chunked(ids)
        for row in conn.execute(
            select(o.patient_id, o.nudge_id, stored_instant(o.last_delivered_at))
            .where(o.patient_id.in_(chunk), o.last_delivered_at >= as_of - max(every, deliveries),
                   o.last_delivered_at <= as_of)
        ).all()
    ]
    folded_idx = catalog.indices([r.nudge_id for r in folded])

    reviewed = [
        p for chunk in chunked(ids)
        for p in session.execute(
            select(ReviewItemRow.patient_id, ReviewItemRow.nudge_id, ReviewItemRow.status,
                   ReviewItemRow.context_version)
            .where(ReviewItemRow.patient_id.in_(chunk), ReviewItemRow.status.in_(("pending", "rejected")))
        )
    ]
    pending = [p for p in reviewed if p.status == "pending"]
    pending_idx = catalog.indices([p.nudge_id for p in pending])
    keep = [k for k, p in enumerate(pending) if p.patient_id in row_of and pending_idx[k] >= 0]
    version_of = {p.id: p.context_version for p in patients}
    rejected = [p for p in reviewed if p.status == "rejected" and p.context_version == version_of.get(p.patient_id)]
    rejected_idx = catalog.indices([p.nudge_id for p in rejected])
    keep_rejected = [k for k, p in enumerate(rejected) if p.patient_id in row_of and rejected_idx[k] >= 0]

    flagged = sorted(suppressed_pairs(session, ids))  # "not right for me" / "unsafe for me": never planned
    flagged_idx = catalog.indices([nudge for _, nudge in flagged])
    keep_flagged = [k for k, (pid, _) in enumerate(flagged) if pid in row_of and flagged_idx[k] >= 0]

    batch = PatientBatch(
        patient_idx=np.arange(n, dtype=np.int64),
        tz=np.array([p.timezone or "UTC" for p in patients], dtype=np.str_),
        locale=np.array([p.locale or "en-US" for p in patients], dtype=np.str_),
        programme=np.array([p.programme or "" for p in patients], dtype=np.str_),
        enrolled_at_s=np.array([(p.enrolled_at or p.created_at).timestamp() for p in patients], dtype=np.float64),
        flags=segment_flags_from_rows(clinical, as_of),
        prefs=prefs,
        events=events,
        pending_review_rows=np.array([row_of[pending[k].patient_id] for k in keep], dtype=np.int32),
        pending_review_nudges=pending_idx[keep].astype(np.int32),
        suppressed_rows=np.array([row_of[flagged[k][0]] for k in keep_flagged], dtype=np.int32),
        suppressed_nudges=flagged_idx[keep_flagged].astype(np.int32),
        rejected_rows=np.array([row_of[rejected[k].patient_id] for k in keep_rejected], dtype=np.int32),
        rejected_nudges=rejected_idx[keep_rejected].astype(np.int32),
        folded_rows=np.array([row_of[r.patient_id] for r in folded], dtype=np.int32),
        folded_nudges=folded_idx,
        folded_delivered_s=(instants_us([r[2] for r in folded]) / 1e6).astype(np.float64),
    )
    return LoadedShard(ids, [p.context_version for p in patients], clinical, batch)
