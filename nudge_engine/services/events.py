"""Recording patient events (delivered, opened, dismissed, completed, activity), idempotently.

Every event is checked against the tracking plan (:mod:`nudge_engine.tracking`) before it is
stored: a misfit is refused (:class:`InvalidInput` naming the body field, and counted) or, in
quarantine mode, set aside and answered as such; it never becomes a raw event. In low-retention
mode an event older than the raw-event window is refused too: nothing older than the window is stored.

With an idempotency key, the first request for (patient, key) stores the event, its audit record
and the answer it gave, in one transaction; any later request with the same key gets that stored
answer back and changes nothing. Concurrent duplicates race on the unique constraint
``(patient_id, idempotency_key)``: exactly one insert wins, the others roll back and replay the
winner's answer. The same key with a different request body is a :class:`Conflict`. A key is answered once
whichever way its first request went: one that a quarantined misfit used is not taken by a valid event, and
on PostgreSQL requests with one key take turns (:data:`KEY_TURN`), so the two cannot race past each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, null, select, text, union_all
from sqlalchemy import cast as sql_cast
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from nudge_engine.adapters.database import writers_take_turns
from nudge_engine.adapters.orm import PatientEventRow, PatientRow, ReadyNudgeRow, new_id
from nudge_engine.adapters.orm.feedback import EventIntakeRow
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.domain.errors import Conflict, InvalidInput, NotFound
from nudge_engine.services.delivery import PatientLookup
from nudge_engine.tracking.intake import SetAside, TrackingGate, set_aside_answer
from nudge_engine.tracking.settings import TrackingMode

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.vault import IdentifierVault

FUTURE_SLACK = timedelta(minutes=5)  # clock skew tolerated on occurred_at

_events = cast("Table", PatientEventRow.__table__)
_e = _events.c
_ready = cast("Table", ReadyNudgeRow.__table__).c
_patients = cast("Table", PatientRow.__table__).c
ERASED_AT = select(_patients.erased_at).where(_patients.id == bindparam("pid"))
_i = cast("Table", EventIntakeRow.__table__).c
# The first answer to a patient's (``pid``) Idempotency-Key (``key``), wherever it was given: a stored event
# (its ``response``) or a quarantined request (its intake row: id, problems, plan version and fingerprint).
# One statement, run before any keyed request is checked or stored: a key is answered once, whatever the
# tracking mode was or is now.
EARLIER_ANSWER = union_all(
    select(_e.response, sql_cast(null(), _i.id.type).label("intake_id"), sql_cast(null(), _i.problems.type)
           .label("problems"), sql_cast(null(), _i.plan_version.type).label("plan_version"),
           sql_cast(null(), _i.request.type).label("request"))
    .where(_e.patient_id == bindparam("pid"), _e.idempotency_key == bindparam("key")),
    select(sql_cast(null(), _e.response.type), _i.id, _i.problems, _i.plan_version, _i.request)
    .where(_i.patient_id == bindparam("pid"), _i.idempotency_key == bindparam("key")),
)
# PostgreSQL: requests with one patient's key take turns from the look-up to their commit (a transaction-level
# advisory lock on the key's hash; a collision only makes two keys wait for each other). Without it a valid event
# and a quarantined misfit with one key could each find it unused and be stored in their own tables. SQLite's
# transactions hold its one write lock from BEGIN, which already makes them take turns.
KEY_TURN = text("SELECT pg_advisory_xact_lock(hashtextextended(:pid || '/' || :key, 0))")
WAS_SERVED = (
    select(_ready.id)
    .where(_ready.patient_id == bindparam("pid"), _ready.nudge_id == bindparam("nid"), _ready.status == "served")
    .limit(1)
)
STORE_EVENT = insert(_events)


class EventKind(StrEnum):
    DELIVERED = "delivered"
    OPENED = "opened"
    DISMISSED = "dismissed"
    COMPLETED = "completed"
    ACTIVITY = "activity"


NUDGE_EVENTS = frozenset({EventKind.DELIVERED, EventKind.OPENED, EventKind.DISMISSED, EventKind.COMPLETED})
_AUDIT_TYPE = {
    EventKind.DELIVERED: EventType.DELIVERED,
    EventKind.OPENED: EventType.OPENED,
    EventKind.DISMISSED: EventType.DISMISSED,
    EventKind.COMPLETED: EventType.COMPLETED,
    EventKind.ACTIVITY: EventType.ACTIVITY,
}


@dataclass(frozen=True, slots=True)
class EventInput:
    """One event as the patient-app backend reports it (envelope schema-validated; the plan is checked here)."""

    kind: str
    occurred_at: datetime
    nudge_id: str | None = None
    session_id: str | None = None
    properties: Mapping[str, Any] | None = None

    def fingerprint(self) -> str:
        """A digest of the request, to tell a true retry from a reused key."""
        doc = {
            "kind": str(self.kind),
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "nudge_id": self.nudge_id,
            "session_id": self.session_id,
            "properties": dict(self.properties or {}),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """The answer to an event request; ``replayed`` when it is the stored answer to an earlier one."""

    body: Mapping[str, Any]
    replayed: bool
    set_aside: SetAside | None = None  # quarantined (the body says so), not stored as an event


class EventRecorder:
    """``POST events``: validate ownership, store, audit; replay the first answer for a repeated key."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        vault: IdentifierVault,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        tracking: TrackingGate | None = None,
        max_age: timedelta | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._patients = PatientLookup(vault)
        self._tracking = tracking or TrackingGate.default()
        self._max_age = max_age  # low-retention mode: nothing older than the raw-event window is stored

    def record(
        self, *, source_id: str, event: EventInput, idempotency_key: str | None, actor_id: str | None
    ) -> RecordedEvent:
        now = self._clock()
        try:
            event.occurred_at.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00: before the first representable UTC instant
            raise InvalidInput("occurred_at: out of range") from None
        if event.occurred_at > now + FUTURE_SLACK:
            raise InvalidInput("occurred_at: lies in the future")
        if self._max_age is not None and event.occurred_at < now - self._max_age:
            raise InvalidInput(f"occurred_at: older than the raw-event retention window ({self._max_age.days} days)")
        fingerprint = event.fingerprint()
        try:
            with self._uow_factory() as uow:
                patient_id = self._patient(uow.session, source_id)
                if idempotency_key is not None:
                    if not writers_take_turns(uow.session.get_bind().dialect):
                        uow.session.execute(KEY_TURN, {"pid": patient_id, "key": idempotency_key})
                    earlier = self._answered(uow, idempotency_key, fingerprint, patient_id=patient_id,
                                             actor_id=actor_id, now=now)
                    if earlier is not None:
                        return earlier
                problems = self._tracking.check(event.kind, nudge_id=event.nudge_id, properties=event.properties)
                if problems:
                    aside, events = self._tracking.set_aside(
                        uow.session, patient_id=patient_id, type_=event.kind, nudge_id=event.nudge_id,
                        session_id=event.session_id, occurred_at=event.occurred_at, properties=event.properties,
                        problems=problems, now=now, actor_id=actor_id, idempotency_key=idempotency_key,
                        request=fingerprint,
                    )
                    self._audit.append(uow.session, events, now=now)
                    uow.commit()
                    if aside.outcome is TrackingMode.REFUSE:
                        raise InvalidInput("; ".join(str(p) for p in problems))
                    return RecordedEvent(_quarantined_body(aside), replayed=False, set_aside=aside)
                if event.nudge_id is not None and not _was_served(uow.session, patient_id, event.nudge_id):
                    raise NotFound("nudge not found")
                body, audited = self._store(
                    uow.session, patient_id=patient_id, event=event, key=idempotency_key, fingerprint=fingerprint,
                    actor_id=actor_id, now=now,
                )
                self._audit.append_and_commit(uow, [audited], now=now)
                return RecordedEvent(body, replayed=False)
        except sa_exc.IntegrityError:
            if idempotency_key is None:
                raise
            return self._replay_winner(source_id, idempotency_key, fingerprint, actor_id=actor_id, now=now)

    def _replay_winner(
        self, source_id: str, key: str, fingerprint: str, *, actor_id: str | None, now: datetime
    ) -> RecordedEvent:
        """Lost the race on (patient_id, idempotency_key): answer as the winner did."""
        with self._uow_factory() as uow:
            patient_id = self._patient(uow.session, source_id)
            earlier = self._answered(uow, key, fingerprint, patient_id=patient_id, actor_id=actor_id, now=now)
            if earlier is not None:
                return earlier
            raise Conflict("the event could not be stored; retry")  # the conflict was not about the key after all

    def _answered(
        self, uow: UnitOfWork, key: str, fingerprint: str, *, patient_id: str, actor_id: str | None, now: datetime,
    ) -> RecordedEvent | None:
        """The first answer to ``key`` (stored event or quarantined request) given again, with an ``event_replayed``
        record: the request read the patient's data. None when the key is new. A key reused for another request is a
        :class:`Conflict`, audited as a denial."""
        row = uow.session.execute(EARLIER_ANSWER, {"pid": patient_id, "key": key}).first()
        if row is None:
            return None
        if row.intake_id is not None:
            aside = set_aside_answer(row.intake_id, row.problems or (), row.plan_version)
            return self._replay_aside(uow, aside, row.request, fingerprint, patient_id=patient_id, actor_id=actor_id,
                                      now=now)
        answer = _replay(dict(row.response), fingerprint)
        self._audit_replay(uow, patient_id=patient_id, actor_id=actor_id, now=now, nudge_id=answer.body.get("nudge_id"),
                           details={"event_id": answer.body.get("event_id")})
        return answer

    def _replay_aside(
        self, uow: UnitOfWork, aside: SetAside, request: str | None, fingerprint: str, *, patient_id: str,
        actor_id: str | None, now: datetime,
    ) -> RecordedEvent:
        """The first answer to a quarantined request whose key came again (nothing set aside twice)."""
        if request != fingerprint:
            raise Conflict("Idempotency-Key was already used with a different request")
        self._audit_replay(uow, patient_id=patient_id, actor_id=actor_id, now=now,
                           details={"intake_id": aside.intake_id})
        return RecordedEvent(_quarantined_body(aside), replayed=True, set_aside=aside)

    def _audit_replay(
        self, uow: UnitOfWork, *, patient_id: str, actor_id: str | None, now: datetime, details: dict[str, Any],
        nudge_id: str | None = None,
    ) -> None:
        """The ``event_replayed`` record of a repeated key's answer, committed with ``uow``."""
        replayed = AuditEvent(EventType.EVENT_REPLAYED, "service", actor_id=actor_id, patient_ref=patient_id,
                              nudge_id=nudge_id, details=details)
        self._audit.append_and_commit(uow, [replayed], now=now)

    def _patient(self, session: Session, source_id: str) -> str:
        patient_id = self._patients.find(session, source_id)
        if patient_id is None:
            raise NotFound("patient not found")
        erased = session.execute(ERASED_AT, {"pid": patient_id}).first()
        if erased is None or erased.erased_at is not None:
            raise NotFound("patient not found")
        return patient_id

    def _store(
        self, session: Session, *, patient_id: str, event: EventInput, key: str | None, fingerprint: str,
        actor_id: str | None, now: datetime,
    ) -> tuple[dict[str, Any], AuditEvent]:
        """Store the event with the answer to replay; returns that answer and the event's audit record."""
        event_id = new_id()
        kind = EventKind(event.kind)
        body: dict[str, Any] = {
            "event_id": event_id,
            "type": kind.value,
            "nudge_id": event.nudge_id,
            "occurred_at": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "received_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        session.execute(
            STORE_EVENT,
            {"id": event_id, "patient_id": patient_id, "type": kind.value, "nudge_id": event.nudge_id,
             "session_id": event.session_id, "occurred_at": event.occurred_at, "received_at": now,
             "properties": dict(event.properties or {}), "idempotency_key": key,
             "response": {"status": 201, "body": body, "request": fingerprint}},
        )
        details: dict[str, Any] = {"event_id": event_id}
        minutes = (event.properties or {}).get("minutes")
        if kind is EventKind.ACTIVITY and isinstance(minutes, int) and not isinstance(minutes, bool):
            details["minutes"] = minutes
        audited = AuditEvent(_AUDIT_TYPE[kind], "service", actor_id=actor_id, patient_ref=patient_id,
                             nudge_id=event.nudge_id, details=details)
        return body, audited


def _quarantined_body(aside: SetAside) -> dict[str, Any]:
    return {
        "status": "quarantined", "intake_id": aside.intake_id, "plan_version": aside.plan_version,
        "problems": [{"field": p.field, "code": p.code} for p in aside.problems],
    }


def _replay(stored: Mapping[str, Any], fingerprint: str) -> RecordedEvent:
    if stored.get("request") != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request")
    return RecordedEvent(dict(stored["body"]), replayed=True)


def _was_served(session: Session, patient_id: str, nudge_id: str) -> bool:
    """Events about a nudge need it to have been served to this patient (another's answers as missing)."""
    return session.execute(WAS_SERVED, {"pid": patient_id, "nid": nudge_id}).first() is not None
