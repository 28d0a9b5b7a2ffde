"""Serving the next nudge: the best ready nudge for now, re-checked when the clinical context moved.

The patient is read and the winner picked without locks (on SQLite in a read-only snapshot, outside
the database's one write lock; on PostgreSQL without the patient's row lock): candidates best first,
a candidate built on an older context version re-checked by the guardrails (a now-blocked or
now-needing-review nudge is never served), serve-time burden limits applied (quiet hours, snooze,
opt-outs, caps). The winner is then claimed in the transaction that commits the audit record
(:class:`Claim`; on PostgreSQL inside the committing message): the claim locks the patient, checks
that what the pick rested on still holds (context version, preferences, the serves counted) and
marks the row served with a compare-and-set (``UPDATE ... WHERE status = 'ready'``), so two
concurrent calls can never serve the same row or break a cap together. If anything moved, nothing
is stored and the call runs again the old way, under the lock from its first read (PostgreSQL
``FOR UPDATE`` on the patient; SQLite ``BEGIN IMMEDIATE``), as does a pass that must supersede a
nudge. The serve (or the empty answer) and every supersession are audited in the same transaction.

Ports (seams) this service is given, each with a safe default:

- :class:`GuardrailPort` re-checks one nudge against one context. Without it, a nudge whose context
  changed is not served (fail closed).
- :class:`ServePolicy` holds serve-time burden limits: :class:`BurdenServePolicy` runs the
  personalization package's ``serve_time_check`` (catalog caps and cooldowns, the patient's caps,
  opt-outs, snooze, quiet hours) over the patient's past serves.
- :class:`ReviewRouting` receives nudges that now need review. The default routes nothing: the
  nudge is superseded and waits for the next build.
- :class:`SessionRules` (personalization ``session``): with a ``session_id``, the ready candidates
  are re-ranked by that app session's recent events (one indexed query): a behaviour just done or a
  category just dismissed is held back for the session, follow-ups of a just-completed nudge come first.

A nudge the patient flagged ("not right for me", "unsafe for me") is superseded when flagged and
skipped by the build; a clinician's later approval of the same nudge is still not served over the flag.
"""

from __future__ import annotations

import threading
import time as time_module
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    FromClause,
    Join,
    Row,
    Select,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nudge_engine.adapters import json_codec
from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.database import writers_take_turns
from nudge_engine.adapters.driver_statements import DriverQuery, DriverStatement
from nudge_engine.adapters.orm import (
    NudgeRow,
    PatientDecisionRow,
    PatientEventRow,
    PatientPreferenceRow,
    PatientRow,
    ReadyNudgeRow,
    ReviewItemRow,
)
from nudge_engine.adapters.orm.feedback import PatientFeedbackRow, PatientNudgeOutcomeRow
from nudge_engine.adapters.orm.patients import PatientIdentifierRow
from nudge_engine.audit.trail import AuditEvent, EventType, SessionFunction
from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.errors import Busy, NotFound
from nudge_engine.domain.nudge import Category, Intensity, Nudge, guarded_digest
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.personalization.agenda import rescore_recorded
from nudge_engine.personalization.candidates import DropReason
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.serve import Delivery, ServePrefs, serve_time_check
from nudge_engine.personalization.session import SessionEvent, SessionRules, rerank, summarise
from nudge_engine.privacy.vault import SOURCE_ID
from nudge_engine.services.approvals import NOT_APPROVED, Approval

if TYPE_CHECKING:

    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.vault import IdentifierVault

CANDIDATES = 16  # ready rows looked at per call, best first
SERVED_LOOKBACK = timedelta(days=8)  # past serves the burden check may count (a local week and a day)
SESSION_WINDOW = timedelta(hours=2)  # how far back the events of an app session are read
SUPPRESSING_FEEDBACK = ("not_right_for_me", "unsafe_for_me")
# What a serve reads through: the unit of work's session, or (SQLite, read without locks) a snapshot's
# plain connection, which costs a fraction of a session to open and end. Reads are Core statements.
Reader: TypeAlias = Session | Connection

# Statements of the hot path, built once (Core, bound parameters): building SQLAlchemy statements
# costs more than running them on an indexed table.
_ready = cast("Table", ReadyNudgeRow.__table__)
_r = _ready.c
_nudges = cast("Table", NudgeRow.__table__)
_patients = cast("Table", PatientRow.__table__)
_prefs = cast("Table", PatientPreferenceRow.__table__)
_pc = _prefs.c
_fb = cast("Table", PatientFeedbackRow.__table__).c
# Per queued row: the patient flagged this nudge ("not right for me", "unsafe for me") and did not lift
# the flag. A flag supersedes the rows queued when it is given; this catches a row a build planned
# before the flag and queued after it (ix_patient_feedback_patient).
FLAGGED_ROW = (
    select(_fb.id)
    .where(_fb.patient_id == _r.patient_id, _fb.nudge_id == _r.nudge_id,
           or_(*(_fb.kind == kind for kind in SUPPRESSING_FEEDBACK)),  # not IN: no expanding parameter per call
           _fb.lifted_at.is_(None))
    .exists()
)
# The patient, their preferences and their queue (ready rows and the serves
# the burden check counts) in one read. One row per queued nudge (at least one: queue columns null
# when it is empty; none when the patient does not exist), each carrying the patient's columns and
# the preferences (null when the patient has none). No JSON column of the queue: decoding every row's
# caution would cost more than the query.
_SERVE_COLUMNS = (
    _patients.c.context_version.label("patient_version"), _patients.c.timezone, _patients.c.erased_at,
    _pc.patient_id.label("prefs_of"), _pc.quiet_start, _pc.quiet_end, _pc.snoozed_until, _pc.opted_out_all,
    sql_cast(_pc.opted_out_categories, Text).label("opted_out_json"), _pc.max_per_day, _pc.max_per_week,
    _pc.updated_at.label("prefs_updated_at"),
    _r.id, _r.nudge_id, _r.status, _r.score, _r.context_version, _r.not_before, _r.expires_at, _r.served_at,
    _r.review_item_id, _r.ruleset_digest, _r.content_digest, sql_cast(_r.caution, Text).label("caution_json"),
    case((_r.status == "ready", FLAGGED_ROW), else_=False).label("flagged"),  # served rows need no check
)


def _with_queue(patients: FromClause) -> Join:
    """``patients`` joined to their preferences and queue (ready rows and the serves counted since ``since``)."""
    return patients.outerjoin(_prefs, _pc.patient_id == _patients.c.id).outerjoin(
        _ready,
        and_(
            _r.patient_id == _patients.c.id,
            or_(_r.status == "ready", and_(_r.status == "served", _r.served_at >= bindparam("since"))),
        ),
    )


SERVE_STATE = select(*_SERVE_COLUMNS).select_from(_with_queue(_patients)).where(_patients.c.id == bindparam("pid"))
# The same read for a patient named by the app's id (its blind-index hash, ``lookup``), with the surrogate
# id: one statement where the look-up and the read took two. The usual case in production, where one
# patient's requests come hours apart and :class:`PatientLookup` has long forgotten them.
_ids_table = cast("Table", PatientIdentifierRow.__table__)
SERVE_STATE_BY_LOOKUP = (
    select(_patients.c.id.label("patient_id"), *_SERVE_COLUMNS)
    .select_from(_with_queue(_patients.join(
        _ids_table, and_(_ids_table.c.patient_id == _patients.c.id, _ids_table.c.kind == SOURCE_ID)
    )))
    .where(_ids_table.c.lookup_hash == bindparam("lookup"))
)
# Both reads run on the driver's cursor (:class:`DriverQuery`): SQLAlchemy's execution context and row objects
# for 16 rows of 25 columns cost about as much of the request's interpreter time as the rest of the read.
SERVE_STATE_ROWS = DriverQuery(SERVE_STATE)
SERVE_STATE_BY_LOOKUP_ROWS = DriverQuery(SERVE_STATE_BY_LOOKUP)
# A queue read's rows as plain named tuples: a serve reads their fields a few hundred times, and a
# SQLAlchemy Row's attribute access (about 1 µs) costs ten times a named tuple's.
def _named_rows(name: str, statement: Select[Any]) -> Callable[[Iterable[Any]], Any]:
    """A maker of named tuples with ``statement``'s column names, from one of its rows."""
    row_type: Any = namedtuple(name, list(statement.selected_columns.keys()))  # type: ignore[misc]
    return cast("Callable[[Iterable[Any]], Any]", row_type._make)


_serve_row = _named_rows("ServeRow", SERVE_STATE)
_serve_row_by_lookup = _named_rows("ServeRowByLookup", SERVE_STATE_BY_LOOKUP)
# The claim's compare-and-set (``Claim``): the row moves from ready to served only if what the serve read
# still holds: the context version its guardrail verdicts rest on, the preferences' stamp, and which
# serves its caps and cooldowns counted (their ids, passed as a JSON array: a count could stay equal
# while one serve comes and another goes). One statement, so the check and the write see the same
# data; on PostgreSQL it runs after the patient's row lock (a statement takes its snapshot when it starts).
_counted = _ready.alias("counted")
_SERVED_NOW = (_counted.c.patient_id == bindparam("pid"), _counted.c.status == "served",
               _counted.c.served_at >= bindparam("since"))
_JSON_ELEMENTS = {"sqlite": "json_each", "postgresql": "json_array_elements_text"}  # a JSON array's text values


def _claim_unmoved(dialect: str) -> ColumnElement[bool]:
    elements = getattr(func, _JSON_ELEMENTS[dialect])(bindparam("served", type_=JSON)).table_valued("value")
    return and_(
        select(_patients.c.id)
        .where(_patients.c.id == bindparam("pid"), _patients.c.context_version == bindparam("version")).exists(),
        select(_pc.updated_at).where(_pc.patient_id == bindparam("pid")).scalar_subquery()
        .is_not_distinct_from(bindparam("prefs_at")),
        select(func.count()).select_from(_counted).where(*_SERVED_NOW).scalar_subquery() == bindparam("n_served"),
        ~select(_counted.c.id).where(*_SERVED_NOW, _counted.c.id.not_in(select(elements.c.value))).exists(),
    )


CLAIM_SERVED = {  # per dialect: (as built, with the serve-time re-check's cautions and rule set)
    dialect: (
        update(_ready).where(_r.id == bindparam("rid"), _r.status == "ready", _claim_unmoved(dialect))
        .values(status="served", served_at=bindparam("b_now")),
        update(_ready).where(_r.id == bindparam("rid"), _r.status == "ready", _claim_unmoved(dialect))
        .values(status="served", served_at=bindparam("b_now"), caution=bindparam("b_caution"),
                ruleset_digest=bindparam("b_digest")),
    )
    for dialect in _JSON_ELEMENTS
}
# SQLite runs the claim inside its one write lock: compiled once, run as driver SQL (no per-call compile step).
CLAIM_SERVED_SQLITE = tuple(DriverStatement(statement) for statement in CLAIM_SERVED["sqlite"])
# The claim as a session function, called in the request's committing message on PostgreSQL (see
# ``AuditTrail.append_and_commit``): it locks the patient, checks the serve's reading, marks the
# expired rows and makes the compare-and-set. When any of that fails it raises CLAIM_LOST, which
# stops the message before its records and COMMIT. Null cautions and digest keep the row's own. The
# expiry runs only when there is something to expire: PL/pgSQL planned ``id = ANY($10)`` afresh on every
# call (a custom plan, 30 µs of the server's time per serve), and most serves expire nothing.
CLAIM_LOST = "NEC01"  # SQLSTATE the function raises (spelled out in its text)
CLAIM_FUNCTION = SessionFunction(
    "pg_temp.nudge_claim_ready",
    "CREATE FUNCTION pg_temp.nudge_claim_ready (text, timestamptz, text, text, text, integer, timestamptz, "
    "timestamptz, text[], text[]) RETURNS void LANGUAGE plpgsql AS $function$\nBEGIN\n"
    "PERFORM 1 FROM patients WHERE id = $5 FOR UPDATE;\n"
    "IF NOT EXISTS (SELECT 1 FROM patients AS p WHERE p.id = $5 AND p.context_version = $6 "
    "AND (SELECT updated_at FROM patient_preferences WHERE patient_id = $5) IS NOT DISTINCT FROM $7 "
    "AND (SELECT COALESCE(array_agg(id::text ORDER BY id::text COLLATE \"C\"), '{}') FROM ready_nudges "
    "WHERE patient_id = $5 AND status = 'served' AND served_at >= $8) = $9)"
    " THEN RAISE EXCEPTION 'the patient''s serve state moved' USING ERRCODE = 'NEC01'; END IF;\n"
    "IF cardinality($10) > 0 THEN UPDATE ready_nudges SET status = 'expired' WHERE id = ANY($10) AND status = 'ready'; "
    "END IF;\n"
    "UPDATE ready_nudges SET status = 'served', served_at = $2, caution = COALESCE(CAST($3 AS json), caution), "
    "ruleset_digest = COALESCE($4, ruleset_digest) WHERE id = $1 AND status = 'ready';\n"
    "IF NOT FOUND THEN RAISE EXCEPTION 'queued nudge no longer ready' USING ERRCODE = 'NEC01'; END IF;\n"
    "END\n$function$",
)


def _retire(status: str) -> Update:
    """Queued rows ``ids`` still ready become ``status`` (one statement, built once)."""
    return update(_ready).where(_r.id.in_(bindparam("ids", expanding=True)), _r.status == "ready").values(status=status)


MARK_SUPERSEDED = _retire("superseded")
MARK_EXPIRED = _retire("expired")
# PostgreSQL: a row lock, taken before the queue is read. SQLite ignores FOR UPDATE, but the engine
# begins every transaction with BEGIN IMMEDIATE (adapters/database.py): the unit of work already holds
# SQLite's one write lock, and next-nudge reads the patient with the queue instead.
LOCK_PATIENT = (
    select(_patients.c.context_version, _patients.c.timezone, _patients.c.erased_at)
    .where(_patients.c.id == bindparam("pid"))
    .with_for_update()
)
_folded = cast("Table", PatientNudgeOutcomeRow.__table__).c
# A patient's last deliveries (or serves) of each nudge that retention folded away since ``since``: read when the
# queue rows of past serves are deleted sooner than the serve-time cooldowns reach back (low retention).
FOLDED_DELIVERIES = select(_folded.nudge_id, _folded.last_delivered_at).where(
    _folded.patient_id == bindparam("pid"), _folded.last_delivered_at >= bindparam("since"))
_ev = cast("Table", PatientEventRow.__table__).c
SESSION_EVENTS = (  # served by ix_patient_events_patient_time; a session holds a handful of events
    select(_ev.type, _ev.nudge_id, _ev.properties)
    .where(_ev.patient_id == bindparam("pid"), _ev.occurred_at >= bindparam("since"),
           _ev.session_id == bindparam("sid"))
    .order_by(_ev.occurred_at, _ev.id)
)


# --- guardrail port --------------------------------------------------------------------------------


class Verdict(StrEnum):
    DELIVER = "deliver"
    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: str
    action: str  # block | review | caution


@dataclass(frozen=True, slots=True)
class Recheck:
    """The guardrails' answer for one nudge on the current context."""

    decision: Verdict
    ruleset_digest: str
    caution: tuple[str, ...] = ()
    fired: tuple[FiredRule, ...] = ()
    escalation: str | None = None  # the rule set's escalation (urgent_clinical ...) of this verdict, if any

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.fired)

    @property
    def review_rule_ids(self) -> frozenset[str]:
        return frozenset(f.rule for f in self.fired if f.action == Verdict.REVIEW)


class GuardrailPort(Protocol):
    """The per-request guardrail evaluator (rule set compiled once)."""

    @property
    def ruleset_digest(self) -> str: ...

    def recheck(self, context: PatientContext, nudge: Nudge, at: datetime) -> Recheck: ...


class CompiledGuardrails:
    """The guardrail port over a compiled rule set (``nudge_engine.guardrails``, per-request evaluator)."""

    def __init__(self, ruleset: CompiledRuleSet) -> None:
        self._ruleset = ruleset

    @property
    def ruleset_digest(self) -> str:
        return self._ruleset.digest

    def recheck(self, context: PatientContext, nudge: Nudge, at: datetime) -> Recheck:
        decision = decide(context, nudge, self._ruleset, at)
        return Recheck(
            decision=Verdict(decision.decision.value),
            ruleset_digest=decision.ruleset_digest,
            caution=decision.caution,
            fired=tuple(FiredRule(f.rule, f.action) for f in decision.fired),
            escalation=decision.escalation,
        )


# --- serve-time burden port ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a nudge may not be served now; ``patient_wide`` holds stop the search (quiet hours ...)."""

    reason: str
    patient_wide: bool


class ServeGate(Protocol):
    def hold(self, nudge: Nudge) -> Hold | None: ...


@dataclass(frozen=True, slots=True)
class Preferences:
    """The patient's stored burden preferences (``patient_preferences``), read with the queue."""

    quiet_start: str
    quiet_end: str
    snoozed_until: datetime | None
    opted_out_all: bool
    opted_out_categories: tuple[str, ...]
    max_per_day: int | None
    max_per_week: int | None


class ServePolicy(Protocol):
    """Serve-time burden limits for one patient, opened once per call with the patient's stored
    preferences (None: they never set any) and past serves (``(nudge_id, served_at)`` over the last
    ``lookback``)."""

    @property
    def lookback(self) -> timedelta: ...

    def open(
        self, *, preferences: Preferences | None, timezone: str, now: datetime,
        served: Sequence[tuple[str, datetime]],
    ) -> ServeGate: ...


def _clock_time(text: str) -> time | None:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        return None


def in_quiet_hours(local: time, start: time | None, end: time | None) -> bool:
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def patient_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


DEFAULT_QUIET = ("21:00", "08:00")


@dataclass
class _PreferenceGate:
    quiet: tuple[time | None, time | None]
    local_now: datetime
    snoozed_until: datetime | None
    opted_out_all: bool
    opted_out: frozenset[str]
    day_left: int | None
    week_left: int | None

    def hold(self, nudge: Nudge) -> Hold | None:
        if self.opted_out_all:
            return Hold("opted_out", patient_wide=True)
        if self.snoozed_until is not None and self.snoozed_until > self.local_now:
            return Hold("snoozed", patient_wide=True)
        if in_quiet_hours(self.local_now.time(), *self.quiet):
            return Hold("quiet_hours", patient_wide=True)
        if self.day_left is not None and self.day_left <= 0:
            return Hold("daily_cap", patient_wide=True)
        if self.week_left is not None and self.week_left <= 0:
            return Hold("weekly_cap", patient_wide=True)
        if nudge.category.value in self.opted_out:
            return Hold("opted_out_category", patient_wide=False)
        return None


class PreferenceServePolicy:
    """Serve-time check from the patient's own preferences only (quiet hours, snooze, opt-outs, personal caps).

    For tests and catalogs kept outside the personalization package; the app's default is
    :class:`BurdenServePolicy`, which adds the catalog's caps and cooldowns.
    """

    lookback = SERVED_LOOKBACK

    def open(
        self, *, preferences: Preferences | None, timezone: str, now: datetime,
        served: Sequence[tuple[str, datetime]],
    ) -> ServeGate:
        zone = patient_zone(timezone)
        local_now = now.astimezone(zone)
        prefs = preferences
        quiet = (prefs.quiet_start, prefs.quiet_end) if prefs else DEFAULT_QUIET
        day_left = week_left = None
        if prefs is not None and (prefs.max_per_day is not None or prefs.max_per_week is not None):
            day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
            week_start = day_start - timedelta(days=day_start.weekday())
            served_day = sum(1 for _, at in served if at >= day_start)
            served_week = sum(1 for _, at in served if at >= week_start)
            if prefs.max_per_day is not None:
                day_left = prefs.max_per_day - served_day
            if prefs.max_per_week is not None:
                week_left = prefs.max_per_week - served_week
        return _PreferenceGate(
            quiet=(_clock_time(quiet[0]), _clock_time(quiet[1])),
            local_now=local_now,
            snoozed_until=prefs.snoozed_until if prefs else None,
            opted_out_all=bool(prefs and prefs.opted_out_all),
            opted_out=frozenset(prefs.opted_out_categories if prefs else ()),
            day_left=day_left,
            week_left=week_left,
        )


HOLDS_EVERYTHING = frozenset({DropReason.SNOOZED, DropReason.QUIET_HOURS})


@dataclass
class _BurdenGate:
    catalog: Catalog
    prefs: ServePrefs
    deliveries: list[Delivery]
    now: datetime

    def hold(self, nudge: Nudge) -> Hold | None:
        reason = serve_time_check(nudge.id, catalog=self.catalog, prefs=self.prefs, deliveries=self.deliveries,
                                  now=self.now)
        if reason is None:
            return None
        return Hold(reason.value, patient_wide=reason in HOLDS_EVERYTHING)


class BurdenServePolicy:
    """Serve-time burden limits of the personalization package: catalog caps and cooldowns, the patient's
    own caps, opt-outs, snooze and quiet hours, counted over the patient's past serves."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.lookback = max(SERVED_LOOKBACK, catalog.longest_cooldown)

    def open(
        self, *, preferences: Preferences | None, timezone: str, now: datetime,
        served: Sequence[tuple[str, datetime]],
    ) -> ServeGate:
        row = preferences
        prefs = ServePrefs(tz=timezone) if row is None else ServePrefs(
            tz=timezone, quiet_start=row.quiet_start, quiet_end=row.quiet_end, snoozed_until=row.snoozed_until,
            opted_out_all=row.opted_out_all,
            opted_out_categories=frozenset(Category(c) for c in row.opted_out_categories if c in _CATEGORIES),
            max_per_day=row.max_per_day, max_per_week=row.max_per_week,
        )
        deliveries = [  # a serve of a nudge since withdrawn from the catalog still counts for the overall caps
            Delivery(served_at, nudge_id, None if (i := self._catalog.index.get(nudge_id)) is None
                     else self._catalog.entries[i].category)
            for nudge_id, served_at in served
        ]
        return _BurdenGate(self._catalog, prefs, deliveries, now)


_CATEGORIES = frozenset(c.value for c in Category)


# --- review routing port ---------------------------------------------------------------------------


class ReviewRouting(Protocol):
    """Where nudges that now need a clinician go (the review queue owns this)."""

    def route(
        self, session: Session, *, patient_id: str, ready_id: str, nudge_id: str, recheck: Recheck, now: datetime
    ) -> list[AuditEvent]: ...

    def reevaluate_pending(
        self, session: Session, *, patient_id: str, context: PatientContext, now: datetime
    ) -> list[AuditEvent]: ...


class NoReviewRouting:
    """Default seam: route nothing (the superseded nudge simply is not served)."""

    def route(
        self, session: Session, *, patient_id: str, ready_id: str, nudge_id: str, recheck: Recheck, now: datetime
    ) -> list[AuditEvent]:
        return []

    def reevaluate_pending(
        self, session: Session, *, patient_id: str, context: PatientContext, now: datetime
    ) -> list[AuditEvent]:
        return []


# --- observation (metrics) port --------------------------------------------------------------------


class DeliveryObserver(Protocol):
    def served(self, nudge: Nudge) -> None: ...

    def rechecked(self, recheck: Recheck | None, *, stage: str) -> None: ...


class NullObserver:
    def served(self, nudge: Nudge) -> None:
        return None

    def rechecked(self, recheck: Recheck | None, *, stage: str) -> None:
        return None


# --- shared helpers --------------------------------------------------------------------------------


def nudge_from_row(row: NudgeRow | Row[Any], *, at: datetime) -> Nudge | None:
    """The domain nudge of a catalog row (mapped or plain) at ``at``, or None when it is withdrawn, outside its
    validity window [valid_from, valid_until), or no longer a valid nudge."""
    if not row.active:
        return None
    if (row.valid_from is not None and at < row.valid_from) or (row.valid_until is not None and at >= row.valid_until):
        return None
    try:
        return Nudge(
            id=row.id, category=Category(row.category), intensity=Intensity(row.intensity),
            duration_min=row.duration_min, tags=frozenset(row.tags or ()), title=row.title, body=row.body,
        )
    except ValueError:
        return None


class NudgeSource(Protocol):
    """Where nudge content comes from; a nudge that is gone (or withdrawn) maps to None."""

    def find(self, session: Reader, ids: Iterable[str], *, at: datetime) -> dict[str, Nudge | None]:
        """The content of ``ids`` as of ``at`` (the service's clock); a nudge that is gone, withdrawn or outside
        its validity window maps to None."""
        ...


class CatalogNudges:
    """Nudge content from the catalog loaded at start-up (``NUDGE_CATALOG``): no database read per serve."""

    def __init__(self, catalog: Catalog) -> None:
        self._nudges = {n.id: n for n in catalog.nudges()}
        self._catalog = catalog

    def find(self, session: Reader, ids: Iterable[str], *, at: datetime) -> dict[str, Nudge | None]:
        now = at.timestamp()
        found: dict[str, Nudge | None] = {}
        for nid in ids:
            i = self._catalog.index.get(nid)
            valid = i is not None and self._catalog.valid_from_s[i] <= now < self._catalog.valid_until_s[i]
            found[nid] = self._nudges[nid] if valid else None
        return found


class StoredNudges:
    """Nudge content from the ``nudges`` table (inactive rows count as withdrawn; validity windows hold)."""

    def find(self, session: Reader, ids: Iterable[str], *, at: datetime) -> dict[str, Nudge | None]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = session.execute(select(*_nudges.c).where(_nudges.c.id.in_(wanted)))
        found = {row.id: nudge_from_row(row, at=at) for row in rows}
        return {nid: found.get(nid) for nid in wanted}


def lock_patient(session: Reader, patient_id: str) -> Row[int, str, datetime | None] | None:
    """Lock the patient's row for this transaction; returns (context_version, timezone, erased_at)."""
    row: Row[int, str, datetime | None] | None = session.execute(LOCK_PATIENT, {"pid": patient_id}).first()
    return row


def approved_for(session: Reader, review_item_id: str | None) -> Approval:
    """What a clinician approved this nudge over (nothing when it was never reviewed or not approved)."""
    if review_item_id is None:
        return NOT_APPROVED
    row = session.execute(
        select(ReviewItemRow.status, ReviewItemRow.fired, ReviewItemRow.escalation)
        .where(ReviewItemRow.id == review_item_id)
    ).first()
    if row is None or row.status != "approved":
        return NOT_APPROVED
    return Approval.of_item(row.fired, row.escalation)


def still_servable(recheck: Recheck, approval: Approval) -> bool:
    """Deliver, or review only for rules, at an escalation, a clinician already approved this very nudge over."""
    if recheck.decision is Verdict.DELIVER:
        return True
    return recheck.decision is Verdict.REVIEW and approval.covers(recheck.review_rule_ids, recheck.escalation)


def superseded_event(*, actor_id: str | None, patient_id: str, nudge_id: str, ready_id: str,
                     recheck: Recheck | None, reason: str) -> AuditEvent:
    return AuditEvent(
        EventType.SUPERSEDED, "service", actor_id=actor_id, patient_ref=patient_id, nudge_id=nudge_id,
        decision=recheck.decision.value if recheck else None,
        rule_ids=recheck.rule_ids if recheck else (),
        ruleset_digest=recheck.ruleset_digest if recheck else None,
        details={"delivery_id": ready_id, "reason": reason},
    )


_ids = _ids_table.c
BLIND_INDEX = select(_ids.patient_id).where(_ids.kind == SOURCE_ID, _ids.lookup_hash == bindparam("lookup"))


class PatientLookup:
    """Source id -> surrogate id through the vault's blind index, remembered briefly in this process.

    A miss is one prebuilt statement on the index (``IdentifierVault.find_patients`` builds an
    IN-list statement per call, several times the cost for one id); next-nudge's lock-free read folds
    it into its queue read instead (:data:`SERVE_STATE_BY_LOOKUP`). The mapping only changes by
    erasure (the identifiers are deleted; callers still see ``erased_at`` on the patient row and
    answer 404) and re-enrolment after erasure (a new surrogate), which this cache picks up within
    ``ttl`` seconds.
    """

    def __init__(self, vault: IdentifierVault, *, ttl: float = 60.0, size: int = 100_000) -> None:
        self._vault = vault
        self._ttl = ttl
        self._size = size
        self._known: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def find(self, session: Reader, source_id: str) -> str | None:
        known = self.known(source_id)
        if known is not None:
            return known
        found: str | None = session.execute(BLIND_INDEX, {"lookup": self.lookup_hash(source_id)}).scalar()
        if found is not None:
            self.remember(source_id, found)
        return found

    def known(self, source_id: str) -> str | None:
        """The surrogate id remembered for ``source_id`` (None: not remembered, or no longer)."""
        hit = self._known.get(source_id)
        return hit[1] if hit is not None and hit[0] > time_module.monotonic() else None

    def remember(self, source_id: str, patient_id: str) -> None:
        with self._lock:
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[source_id] = (time_module.monotonic() + self._ttl, patient_id)

    def lookup_hash(self, source_id: str) -> str:
        """The blind index's key for ``source_id`` (see :data:`SERVE_STATE_BY_LOOKUP`)."""
        return self._vault.lookup_hash(source_id)


# --- the use case ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServedNudge:
    """What the patient app shows now."""

    delivery_id: str
    nudge: Nudge
    caution: tuple[str, ...]
    served_at: datetime
    expires_at: datetime
    ruleset_digest: str
    rechecked: bool


@dataclass
class _Pass:
    """Work collected during one call, written before commit."""

    events: list[AuditEvent] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    hold: Hold | None = None
    context: PatientContext | None = None
    session_held: int | None = None  # with a session id: candidates the session held back
    may_write: bool = True  # False: read without locks; a write beyond the claim needs the pass again, locked
    recheck: Recheck | None = None  # the winner's serve-time re-check (None: served as built)
    rechecks: list[Recheck | None] = field(default_factory=list)  # observed once the pass commits


def _ready_in_order(session: Reader, queue: Sequence[Any], weights: Mapping[str, float] | None) -> list[Any]:
    """The ready rows, best first: by build score, or re-scored under the request's weight overrides."""
    ready_rows = [r for r in queue if r.status == "ready"]
    scores = {r.id: float(r.score) for r in ready_rows}
    if weights:
        scores.update(_reweighed(session, ready_rows, weights))
    return sorted(ready_rows, key=lambda r: (-scores[r.id], r.id))


def _reweighed(session: Reader, rows: Sequence[Any], weights: Mapping[str, float]) -> dict[str, float]:
    """Scores of queued nudges under weight overrides, from the components recorded with their decision.

    A clinician-approved nudge (no recorded components) keeps its queue position."""
    decision_of = {
        rid: did for rid, did in session.execute(
            select(_r.id, _r.decision_id).where(_r.id.in_([r.id for r in rows if r.review_item_id is None]))
        ) if did
    }
    decision_ids = set(decision_of.values())
    if not decision_ids:
        return {}
    recorded: dict[tuple[str, str], Mapping[str, Mapping[str, float]]] = {}
    for did, chosen in session.execute(
        select(PatientDecisionRow.id, PatientDecisionRow.chosen).where(PatientDecisionRow.id.in_(decision_ids))
    ):
        for pick in chosen or ():
            comps = (pick.get("components") or {}).get("components")
            if comps:
                recorded[(did, pick["nudge"])] = {
                    name: {"value": float(part.get("value") or 0.0), "weight": float(part.get("weight") or 0.0)}
                    for name, part in comps.items()
                }
    keyed = [(r.id, recorded[key]) for r in rows if (key := (decision_of.get(r.id), r.nudge_id)) in recorded]
    rescored = rescore_recorded([comps for _, comps in keyed], weights)
    return {rid: score for (rid, _), (score, _) in zip(keyed, rescored, strict=True)}


class ClaimLost(Busy):
    """What the serve read had moved when it came to claim its nudge (nothing was stored)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What a serve read of the patient, checked again when it claims its row (see :data:`CLAIM_SERVED`)."""

    patient_id: str
    context_version: int
    prefs_updated_at: datetime | None
    since: datetime
    served: tuple[str, ...]  # ids of the serves counted, sorted


@dataclass(frozen=True, slots=True)
class Claim:
    """The winner's compare-and-set (ready to served, with the re-check's cautions and rule set when it was
    re-checked), made only if the serve's :class:`Reading` still holds, with the expired rows it saw
    marked: a :class:`~nudge_engine.audit.trail.CommitStep` of the request's commit."""

    ready_id: str
    at: datetime
    recheck: Recheck | None
    reading: Reading
    expired: tuple[str, ...] = ()

    @property
    def function(self) -> SessionFunction:
        return CLAIM_FUNCTION

    def args(self) -> list[Any]:
        caution = json_codec.dumps(list(self.recheck.caution)) if self.recheck is not None else None
        digest = self.recheck.ruleset_digest if self.recheck is not None else None
        seen = self.reading
        return [self.ready_id, self.at, caution, digest, seen.patient_id, seen.context_version,
                seen.prefs_updated_at, seen.since, list(seen.served), list(self.expired)]

    def run(self, connection: Connection) -> None:
        seen = self.reading
        if not writers_take_turns(connection.dialect):  # the lock, then a compare-and-set of its own
            lock_patient(connection, seen.patient_id)
        if self.expired:
            connection.execute(MARK_EXPIRED, {"ids": list(self.expired)})
        params = {"rid": self.ready_id, "b_now": self.at, "pid": seen.patient_id, "version": seen.context_version,
                  "prefs_at": seen.prefs_updated_at, "since": seen.since, "n_served": len(seen.served),
                  "served": list(seen.served)}
        if self.recheck is not None:
            params.update(b_caution=list(self.recheck.caution), b_digest=self.recheck.ruleset_digest)
        which = int(self.recheck is not None)  # (as built, re-checked)
        if connection.dialect.name == "sqlite":
            rowcount = CLAIM_SERVED_SQLITE[which].execute(connection, params).rowcount
        else:
            rowcount = connection.execute(CLAIM_SERVED[connection.dialect.name][which], params).rowcount
        if rowcount != 1:
            raise ClaimLost("the patient's serve state moved, or the nudge is no longer ready")


class _NeedsLock(Exception):
    """A serve read without locks found work beyond its claim (superseding, routing to review)."""


CLAIM_ATTEMPTS = 3  # a lost claim (another writer moved first) starts the call again, under the lock


def _claim_lost(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == CLAIM_LOST


class DeliveryService:
    """``GET next-nudge``: pick, re-check, limit, mark served and audit, in one transaction."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        vault: IdentifierVault,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        guardrails: GuardrailPort | None,
        nudges: NudgeSource,
        policy: ServePolicy | None = None,
        review: ReviewRouting | None = None,
        observer: DeliveryObserver | None = None,
        session_rules: SessionRules | None = None,
        session_window: timedelta = SESSION_WINDOW,
        snapshots: Callable[[], AbstractContextManager[Connection]] | None = None,
        retained: timedelta | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._snapshots = snapshots  # SQLite: read-only transactions (snapshots) outside the write lock
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._guardrails = guardrails
        self._nudges = nudges
        self._patients = PatientLookup(vault)
        self._policy: ServePolicy = policy or PreferenceServePolicy()
        self._review: ReviewRouting = review or NoReviewRouting()
        self._observer: DeliveryObserver = observer or NullObserver()
        self._session_rules = session_rules or SessionRules()
        self._session_window = session_window
        # ``retained``: how long finished queue rows are kept (the decision retention window). When the policy's
        # cooldowns reach back further, the serves retention deleted are read from their folded aggregates too.
        self._reads_folded = retained is not None and retained < self._policy.lookback

    def next_nudge(
        self, *, source_id: str, actor_id: str | None, session_id: str | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> ServedNudge | None:
        """The nudge to show now (marked served), or None. Unknown patients raise :class:`NotFound`.

        With ``session_id``, the candidates are re-ranked by that app session's recent events. With
        ``weights`` (late-binding overrides, e.g. ``{"agenda": 2}``), the queued nudges are re-scored
        from the score components recorded with their build decision before anything else.

        The patient is read and the winner picked without locks (on SQLite in a snapshot, outside the
        write lock; on PostgreSQL without the patient's row lock), and the winner is claimed with the
        commit (:class:`Claim`: on PostgreSQL inside the committing message): the claim checks that
        what the serve read still holds and marks the row served with a compare-and-set. When another
        writer moved first, nothing is committed and the call starts again under the lock
        (:data:`CLAIM_ATTEMPTS` in all).
        A pass that would write more than its claim (supersede a nudge, route one to review) is done
        again under the lock (PostgreSQL: the patient's row; SQLite: the write lock from the start)."""
        now = self._clock()
        locked, lost = False, 0
        while True:
            try:
                served, work = self._serve(source_id=source_id, actor_id=actor_id, session_id=session_id,
                                           weights=weights, now=now, locked=locked)
            except _NeedsLock:
                locked = True
                continue
            except (ClaimLost, DBAPIError) as error:
                if isinstance(error, DBAPIError) and not _claim_lost(error):
                    raise
                lost += 1
                if lost == CLAIM_ATTEMPTS:
                    raise ClaimLost("the nudge could not be claimed; try again") from error
                locked = True  # concurrent writers on this patient: read under the lock from now on
                continue
            for verdict in work.rechecks:  # the committed pass's only: a pass done again is counted once
                self._observer.rechecked(verdict, stage="serve")
            if served is not None:
                self._observer.served(served.nudge)
            return served

    def _serve(
        self, *, source_id: str, actor_id: str | None, session_id: str | None, weights: Mapping[str, float] | None,
        now: datetime, locked: bool,
    ) -> tuple[ServedNudge | None, _Pass]:
        since = now - self._policy.lookback
        if not locked and self._snapshots is not None:  # SQLite: read and pick outside the write lock
            with self._snapshots() as reader:
                work = _Pass(may_write=False)
                served, patient_id, reading = self._read_and_pick(
                    reader, source_id, work, lock=False, since=since, now=now, actor_id=actor_id,
                    session_id=session_id, weights=weights,
                )
            with self._uow_factory() as uow:
                self._commit(uow, work, served, patient_id=patient_id, reading=reading, actor_id=actor_id, now=now)
            return served, work
        with self._uow_factory() as uow:
            db = uow.session.connection()
            take_turns = writers_take_turns(db.dialect)  # SQLite holds the write lock from BEGIN
            work = _Pass(may_write=locked or take_turns)
            served, patient_id, reading = self._read_and_pick(
                uow.session, source_id, work, lock=locked and not take_turns, since=since, now=now, actor_id=actor_id,
                session_id=session_id, weights=weights,
            )
            self._commit(uow, work, served, patient_id=patient_id, reading=reading, actor_id=actor_id, now=now)
        return served, work

    def _read_and_pick(
        self, session: Reader, source_id: str, work: _Pass, *, lock: bool, since: datetime, now: datetime,
        actor_id: str | None, session_id: str | None, weights: Mapping[str, float] | None,
    ) -> tuple[ServedNudge | None, str, Reading]:
        # the hot statements go to the transaction's connection directly
        db = session if isinstance(session, Connection) else session.connection()
        patient_id = self._patients.known(source_id)
        if patient_id is None and not lock:  # not seen lately: found and read in one statement
            queue: list[Any] = list(map(_serve_row_by_lookup, SERVE_STATE_BY_LOOKUP_ROWS.rows(
                db, {"lookup": self._patients.lookup_hash(source_id), "since": since})))
            if queue:
                patient_id = str(queue[0].patient_id)
                self._patients.remember(source_id, patient_id)
        else:
            patient_id = patient_id or self._patients.find(db, source_id)
            if patient_id is not None and lock:
                lock_patient(db, patient_id)  # before the read: a concurrent serve's changes are then visible
            queue = [] if patient_id is None else list(map(
                _serve_row, SERVE_STATE_ROWS.rows(db, {"pid": patient_id, "since": since})))
        if patient_id is None or not queue or queue[0].erased_at is not None:
            raise NotFound("patient not found")
        first = queue[0]
        reading = Reading(patient_id, int(first.patient_version), first.prefs_updated_at, since,
                          tuple(sorted(r.id for r in queue if r.status == "served")))
        served = self._pick(
            session, db, queue, patient_id=patient_id, now=now, actor_id=actor_id, work=work, session_id=session_id,
            weights=weights,
        )
        return served, patient_id, reading

    def _commit(
        self, uow: UnitOfWork, work: _Pass, served: ServedNudge | None, *, patient_id: str, reading: Reading,
        actor_id: str | None, now: datetime,
    ) -> None:
        """Claim the winner (expired rows marked with it) or audit the empty answer, then commit."""
        steps: list[Claim] = []
        if served is not None:
            steps.append(Claim(served.delivery_id, now, work.recheck, reading, tuple(work.expired)))
        else:
            if work.expired:  # PostgreSQL: the patient's lock first, the order every writer of the queue keeps
                db = uow.session.connection()
                if not work.may_write and not writers_take_turns(db.dialect):
                    lock_patient(db, patient_id)
                db.execute(MARK_EXPIRED, {"ids": work.expired})
            outcome = work.hold.reason if work.hold else "held_by_session" if work.session_held else "none_ready"
            details: dict[str, Any] = {"outcome": outcome}
            if work.session_held is not None:
                details["session_held"] = work.session_held
            work.events.append(
                AuditEvent(EventType.SERVED, "service", actor_id=actor_id, patient_ref=patient_id, decision="none",
                           details=details)
            )
        self._audit.append_and_commit(uow, work.events, now=now, first=steps)  # last: the chain head is held briefly

    def _pick(
        self, session: Reader, db: Connection, queue: Sequence[Any], *, patient_id: str, now: datetime,
        actor_id: str | None, work: _Pass, session_id: str | None = None, weights: Mapping[str, float] | None = None,
    ) -> ServedNudge | None:
        """The winner among ``queue`` (:data:`SERVE_STATE` rows), its claim put in ``work``; None when nothing may
        be served."""
        version = queue[0].patient_version
        ready = _ready_in_order(session, queue, weights)
        live: list[Any] = []
        for r in ready:
            if r.expires_at <= now:
                work.expired.append(r.id)
            elif (r.not_before is None or r.not_before <= now) and len(live) < CANDIDATES:
                live.append(r)
        if not live:
            return None
        nudges = self._nudges.find(session, [r.nudge_id for r in live], at=now)
        if session_id is not None:
            live = self._session_order(session, patient_id=patient_id, session_id=session_id, now=now, live=live,
                                       nudges=nudges, work=work)
        gate: ServeGate | None = None
        for r in live:
            nudge = nudges.get(r.nudge_id)
            if nudge is None:
                self._supersede(session, work, actor_id=actor_id, patient_id=patient_id, nudge_id=r.nudge_id,
                                ready_id=r.id, verdict=None, reason="withdrawn")
                continue
            if r.flagged:  # queued (or approved by a clinician) after the patient flagged it: the flag stands
                self._supersede(session, work, actor_id=actor_id, patient_id=patient_id, nudge_id=nudge.id,
                                ready_id=r.id, verdict=None, reason="patient_flagged")
                continue
            verdict: Recheck | None = None
            # a context that moved since the build, a rule set deployed since (approved rows included), or
            # catalog content the decision did not read
            content_moved = r.content_digest != guarded_digest(nudge)
            rechecked = content_moved or r.context_version != version or (
                self._guardrails is not None and r.ruleset_digest != self._guardrails.ruleset_digest)
            if rechecked:
                verdict = self._recheck(session, patient_id, nudge, now, work)
                if verdict is None:  # no rule set to re-check with: fail closed, leave it for later
                    continue
                if not still_servable(verdict, approved_for(session, r.review_item_id)):
                    writer = self._supersede(session, work, actor_id=actor_id, patient_id=patient_id,
                                             nudge_id=nudge.id, ready_id=r.id, verdict=verdict,
                                             reason="content_changed" if content_moved else "context_changed")
                    if verdict.decision is Verdict.REVIEW:
                        work.events.extend(self._review.route(
                            writer, patient_id=patient_id, ready_id=r.id, nudge_id=nudge.id, recheck=verdict,
                            now=now,
                        ))
                    continue
            if gate is None:
                gate = self._gate(session, queue, patient_id=patient_id, now=now)
            hold = gate.hold(nudge)
            if hold is not None:
                work.hold = hold
                if hold.patient_wide:
                    return None
                continue
            if verdict is None:
                caution = tuple(json_codec.loads(r.caution_json) if r.caution_json else ())
                digest = str(r.ruleset_digest)
            else:
                caution, digest = verdict.caution, verdict.ruleset_digest
            work.recheck = verdict
            served_details: dict[str, Any] = {"delivery_id": r.id, "rechecked": rechecked, "cautions": len(caution)}
            if work.session_held is not None:
                served_details["session_held"] = work.session_held
            work.events.append(
                AuditEvent(
                    EventType.SERVED, "service", actor_id=actor_id, patient_ref=patient_id, nudge_id=nudge.id,
                    decision=Verdict.DELIVER.value, ruleset_digest=digest, details=served_details,
                )
            )
            return ServedNudge(r.id, nudge, caution, now, r.expires_at, digest, rechecked)
        return None

    def _gate(self, session: Reader, queue: Sequence[Any], *, patient_id: str, now: datetime) -> ServeGate:
        """The serve-time burden check over the patient's preferences and past serves (``queue``'s served rows, and
        with ``retained`` shorter than the lookback, the serves retention folded away)."""
        served = [(r.nudge_id, r.served_at) for r in queue if r.status == "served" and r.served_at]
        if self._reads_folded:
            served += _folded_deliveries(session, patient_id, served, since=now - self._policy.lookback)
        return self._policy.open(preferences=_preferences(queue[0]), timezone=queue[0].timezone, now=now,
                                 served=served)

    def _session_order(
        self, session: Reader, *, patient_id: str, session_id: str, now: datetime, live: list[Any],
        nudges: dict[str, Nudge | None], work: _Pass,
    ) -> list[Any]:
        """``live`` re-ranked by the app session's recent events; what the session rules out is left out."""
        rows = session.execute(
            SESSION_EVENTS, {"pid": patient_id, "sid": session_id, "since": now - self._session_window}
        ).all()
        work.session_held = 0
        if not rows:
            return live
        events = [SessionEvent(r.type, r.nudge_id, r.properties) for r in rows]
        dismissed = {e.nudge_id for e in events if e.type == "dismissed" and e.nudge_id} - set(nudges)
        known = {**nudges, **(self._nudges.find(session, dismissed, at=now) if dismissed else {})}

        def category_of(nudge_id: str) -> str | None:
            found = known.get(nudge_id)
            return found.category.value if found is not None else None

        state = summarise(events, self._session_rules, category_of=category_of)
        candidates = [(r.nudge_id, category_of(r.nudge_id) or "") for r in live]
        order = rerank(candidates, state, self._session_rules)
        work.session_held = len(order.held)
        return [live[i] for i in order.order]

    def _recheck(
        self, session: Reader, patient_id: str, nudge: Nudge, now: datetime, work: _Pass
    ) -> Recheck | None:
        if self._guardrails is None:
            work.rechecks.append(None)
            return None
        if work.context is None:
            work.context = load_contexts(session, [patient_id]).get(patient_id, PatientContext())
        verdict = self._guardrails.recheck(work.context, nudge, now)
        work.rechecks.append(verdict)
        return verdict

    def _supersede(
        self, session: Reader, work: _Pass, *, actor_id: str | None, patient_id: str, nudge_id: str,
        ready_id: str, verdict: Recheck | None, reason: str,
    ) -> Session:
        """Supersede the row within this pass, or raise :class:`_NeedsLock` when the pass may not write; returns
        the unit of work's session the pass writes through."""
        if not work.may_write or not isinstance(session, Session):
            raise _NeedsLock
        supersede_rows(session, [ready_id])
        work.superseded.append(ready_id)
        work.events.append(
            superseded_event(actor_id=actor_id, patient_id=patient_id, nudge_id=nudge_id, ready_id=ready_id,
                             recheck=verdict, reason=reason)
        )
        return session


def _folded_deliveries(
    session: Reader, patient_id: str, served: Sequence[tuple[str, datetime]], *, since: datetime
) -> list[tuple[str, datetime]]:
    """The last deliveries since ``since`` that retention folded away, of nudges with no serve still queued in
    ``served``: a folded delivery of such a nudge is older than its stored serve, or that very serve, or the app's
    report of it (counted once)."""
    stored = {nudge_id for nudge_id, _ in served}
    return [(str(r.nudge_id), r.last_delivered_at) for r in session.execute(
        FOLDED_DELIVERIES, {"pid": patient_id, "since": since}) if r.nudge_id not in stored and r.nudge_id]


def _preferences(row: Any) -> Preferences | None:
    """The preferences carried by a :data:`SERVE_STATE` row (None when the patient has none stored)."""
    if row.prefs_of is None:
        return None
    return Preferences(
        quiet_start=row.quiet_start, quiet_end=row.quiet_end, snoozed_until=row.snoozed_until,
        opted_out_all=bool(row.opted_out_all),
        opted_out_categories=tuple(json_codec.loads(row.opted_out_json) if row.opted_out_json else ()),
        max_per_day=row.max_per_day, max_per_week=row.max_per_week,
    )


def supersede_rows(session: Session, ids: Sequence[str]) -> None:
    if ids:
        session.execute(MARK_SUPERSEDED, {"ids": list(ids)})
