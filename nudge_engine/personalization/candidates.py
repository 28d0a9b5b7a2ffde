"""Candidates and burden for a whole batch: who may get which nudge, from when, and why not.

Each (patient, nudge) pair either survives, with the earliest time it may be sent (the end of quiet
hours, of a snooze, or of a capped local day or week), or is dropped with one coded reason. When
several reasons apply, the first in :class:`DropReason` order wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.calendar import in_quiet, local_at, local_calendar, local_times, zone
from nudge_engine.personalization.catalog import CATEGORIES, Catalog
from nudge_engine.personalization.events import EventType

SURVIVES = -1


class DropReason(StrEnum):
    """Why a candidate nudge did not reach the ready queue (code = position in this list)."""

    NOT_ELIGIBLE = "not_eligible"  # programme, target segment, locale or validity window
    OPTED_OUT = "opted_out"  # the patient opted out of the category, of all nudges, or of this nudge
    PENDING_REVIEW = "pending_review"  # already waiting for a clinician's decision
    COOLDOWN = "cooldown"  # delivered within the nudge's cooldown
    CAPPED = "capped"  # daily or weekly cap (overall or per category) reached in the local calendar
    SNOOZED = "snoozed"  # the patient snoozed nudges beyond the planning horizon
    QUIET_HOURS = "quiet_hours"  # in the patient's quiet hours (at serve time, or beyond the horizon)
    BLOCKED_BY_RULE = "blocked_by_rule"  # a guardrail rule blocked it
    NEAR_DUPLICATE = "near_duplicate"  # too similar to the nudge delivered last (diversity, see similarity.py)
    REJECTED_IN_REVIEW = "rejected_in_review"  # a clinician rejected it on the patient's current record


REASONS: tuple[DropReason, ...] = tuple(DropReason)
REASON_CODE: dict[DropReason, int] = {r: i for i, r in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """(patients × nudges) outcome of eligibility and burden checks."""

    reason: npt.NDArray[np.int8]  # SURVIVES or a REASON_CODE
    earliest_s: npt.NDArray[np.float64]  # earliest send time of surviving pairs (epoch seconds)
    last_delivered_s: npt.NDArray[np.float64]  # -inf when never delivered in the history window

    @property
    def survives(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.reason == SURVIVES
        return out


def eligibility(
    batch: PatientBatch, catalog: Catalog, membership: npt.NDArray[np.bool_], segment_ids: tuple[str, ...], now_s: float
) -> npt.NDArray[np.bool_]:
    """Programme, target segments, language and validity window (patients × nudges)."""
    valid = (catalog.valid_from_s <= now_s) & (now_s < catalog.valid_until_s)
    prog = np.array([p or "" for p in catalog.programme])
    programme_ok = (prog == "")[None, :] | (batch.programme[:, None] == prog[None, :])
    language = np.char.partition(batch.locale.astype(str), "-")[:, 0]
    language_ok = language[:, None] == np.array(catalog.language)[None, :]
    targets = catalog.target_matrix(segment_ids)
    targeted_ok = ~catalog.targeted[None, :] | (membership.astype(np.float32) @ targets.T.astype(np.float32) > 0)
    out: npt.NDArray[np.bool_] = valid[None, :] & programme_ok & language_ok & targeted_ok
    return out


def delivery_counts(
    batch: PatientBatch, since_s: npt.NDArray[np.float64], now_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Deliveries per patient and per (patient, category) in [since_s[patient], now]."""
    ev = batch.events
    rows = ev.patient_row
    m = (ev.type_code == EventType.DELIVERED) & (ev.ts <= now_s) & (ev.ts >= since_s[rows])
    n, c = len(batch), len(CATEGORIES)
    total = np.bincount(rows[m], minlength=n)
    cat = ev.category_code[m].astype(np.int64)
    has = cat >= 0
    per_cat = np.bincount(rows[m][has].astype(np.int64) * c + cat[has], minlength=n * c).reshape(n, c)
    return total, per_cat


def last_delivered(batch: PatientBatch, n_nudges: int, now_s: float) -> npt.NDArray[np.float64]:
    ev = batch.events
    m = (ev.type_code == EventType.DELIVERED) & (ev.nudge_idx >= 0) & (ev.ts <= now_s)
    out = np.full(len(batch) * n_nudges, -np.inf)
    np.maximum.at(out, ev.patient_row[m].astype(np.int64) * n_nudges + ev.nudge_idx[m], ev.ts[m].astype(np.float64))
    folded = (batch.folded_nudges >= 0) & (batch.folded_delivered_s <= now_s)
    np.maximum.at(out, batch.folded_rows[folded].astype(np.int64) * n_nudges + batch.folded_nudges[folded],
                  batch.folded_delivered_s[folded])
    return out.reshape(len(batch), n_nudges)


def _cap(personal: npt.NDArray[np.int32], default: int) -> npt.NDArray[np.int64]:
    return np.where(personal >= 0, np.minimum(personal, default), default).astype(np.int64)


def candidates(
    batch: PatientBatch,
    catalog: Catalog,
    membership: npt.NDArray[np.bool_],
    segment_ids: tuple[str, ...],
    *,
    now: datetime,
) -> CandidateSet:
    """Drop reasons and earliest send times for every (patient, nudge) of the batch."""
    now_s = now.timestamp()
    limits = catalog.burden
    prefs = batch.prefs
    cat = catalog.category_code.astype(np.int64)
    n_p, n_n = len(batch), len(catalog)
    reason = np.full((n_p, n_n), SURVIVES, dtype=np.int8)

    def drop(mask: npt.NDArray[np.bool_], why: DropReason) -> None:
        reason[(reason == SURVIVES) & mask] = REASON_CODE[why]

    def drop_pairs(rows: npt.NDArray[np.int32], nudges: npt.NDArray[np.int32], why: DropReason) -> None:
        if len(rows):  # (row, nudge) pairs; most batches have none
            mask = np.zeros((n_p, n_n), dtype=bool)
            mask[rows, nudges] = True
            drop(mask, why)

    drop(~eligibility(batch, catalog, membership, segment_ids, now_s), DropReason.NOT_ELIGIBLE)
    opted_out = prefs.opted_out_all[:, None] | prefs.opted_out_categories[:, cat]
    if len(batch.suppressed_rows):
        opted_out[batch.suppressed_rows, batch.suppressed_nudges] = True
    drop(opted_out, DropReason.OPTED_OUT)
    drop_pairs(batch.pending_review_rows, batch.pending_review_nudges, DropReason.PENDING_REVIEW)
    # until the record changes: a rejection is not asked again on the same facts
    drop_pairs(batch.rejected_rows, batch.rejected_nudges, DropReason.REJECTED_IN_REVIEW)
    last = last_delivered(batch, n_n, now_s)
    drop(last + catalog.cooldown_s[None, :] > now_s, DropReason.COOLDOWN)

    cal, zones, zone_code = local_calendar(now, batch.tz)
    day_total, day_cat = delivery_counts(batch, cal.day_start, now_s)
    week_total, week_cat = delivery_counts(batch, cal.week_start, now_s)
    cat_day_caps = np.array([limits.category_day_cap(c) for c in CATEGORIES], dtype=np.int64)
    cat_week_caps = np.array([limits.category_week_cap(c) for c in CATEGORIES], dtype=np.int64)
    day_capped = (day_total >= _cap(prefs.max_per_day, limits.max_per_day))[:, None] | (
        day_cat[:, cat] >= cat_day_caps[cat][None, :]
    )
    week_capped = (week_total >= _cap(prefs.max_per_week, limits.max_per_week))[:, None] | (
        week_cat[:, cat] >= cat_week_caps[cat][None, :]
    )

    # Earliest send times, each already moved out of quiet hours; the max of such times is too.
    qs, qe = prefs.quiet_start_min, prefs.quiet_end_min
    quiet_now = in_quiet(cal.minute, qs, qe)
    after_end_today = (qs > qe) & (cal.minute >= qs)
    end_today = local_times(zones, zone_code, cal.local_date_ordinal, qe)
    end_tomorrow = local_times(zones, zone_code, cal.local_date_ordinal + 1, qe)
    t_now = np.where(quiet_now, np.where(after_end_today, end_tomorrow, end_today), now_s)
    midnight_quiet = in_quiet(0, qs, qe)
    t_day = np.where(midnight_quiet, end_tomorrow, cal.next_day_start)
    t_week = np.where(
        midnight_quiet, local_times(zones, zone_code, cal.next_week_ordinal, qe), cal.next_week_start
    )
    t_snooze = _snooze_times(batch, now_s)

    horizon = now_s + limits.horizon_hours * 3600.0
    earliest = np.maximum(t_now, t_snooze)[:, None] * np.ones((1, n_n))
    earliest = np.where(day_capped, np.maximum(earliest, t_day[:, None]), earliest)
    earliest = np.where(week_capped, np.maximum(earliest, t_week[:, None]), earliest)
    late = earliest > horizon
    caps_bind = np.maximum(
        np.where(day_capped, t_day[:, None], -np.inf), np.where(week_capped, t_week[:, None], -np.inf)
    )
    drop(late & (caps_bind > horizon), DropReason.CAPPED)
    drop(late & (t_snooze > horizon)[:, None], DropReason.SNOOZED)
    drop(late, DropReason.QUIET_HOURS)
    return CandidateSet(reason=reason, earliest_s=earliest, last_delivered_s=last)


def _snooze_times(batch: PatientBatch, now_s: float) -> npt.NDArray[np.float64]:
    """End of each active snooze, moved out of quiet hours (-inf when not snoozed). Few patients: scalar."""
    prefs = batch.prefs
    out = np.full(len(batch), -np.inf)
    for i in np.flatnonzero(prefs.snoozed_until_s > now_s):
        until = float(prefs.snoozed_until_s[i])
        out[i] = next_send_time(until, str(batch.tz[i]), int(prefs.quiet_start_min[i]), int(prefs.quiet_end_min[i]))
    return out


def next_send_time(at_s: float, tz_name: str, quiet_start: int, quiet_end: int) -> float:
    """``at_s`` itself, or the end of the quiet hours it falls in (local wall clock of ``tz_name``)."""
    tz = zone(tz_name)
    local = datetime.fromtimestamp(at_s, tz)
    minute = local.hour * 60 + local.minute
    if not bool(in_quiet(minute, quiet_start, quiet_end)):
        return at_s
    day = local.date().toordinal() + (1 if quiet_start > quiet_end and minute >= quiet_start else 0)
    return local_at(date.fromordinal(day), quiet_end, tz)
