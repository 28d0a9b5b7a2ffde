"""The tracking gate: events are checked against the plan before they are stored; misfits are refused or set aside.

In ``refuse`` mode a misfit is answered 422 naming the field and counted (a row in
``event_intake_issues`` with the problems, never the values). In ``quarantine`` mode it is kept
there with its envelope (codes, counts, measures: what the request schema already admits) and the
request is answered 202. Either way it never becomes a raw event the models learn from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import new_id
from nudge_engine.adapters.orm.feedback import EventIntakeRow
from nudge_engine.audit.trail import AuditEvent, EventType
from nudge_engine.tracking.plan import DEFAULT_PLAN, Problem, TrackingPlan, load_tracking_plan
from nudge_engine.tracking.settings import TrackingMode

TYPE_LEN = 32
OUTCOME = {TrackingMode.REFUSE: "refused", TrackingMode.QUARANTINE: "quarantined"}


@dataclass(frozen=True, slots=True)
class SetAside:
    """What became of an event outside the plan."""

    intake_id: str
    outcome: TrackingMode
    problems: tuple[Problem, ...]
    plan_version: str


class TrackingGate:
    """The tracking plan and what to do with events that do not match it."""

    def __init__(self, plan: TrackingPlan, mode: TrackingMode = TrackingMode.REFUSE) -> None:
        self.plan = plan
        self.mode = mode

    @classmethod
    def default(cls) -> TrackingGate:
        return cls(load_tracking_plan(DEFAULT_PLAN))

    def check(self, type_: str, *, nudge_id: str | None, properties: Mapping[str, Any] | None) -> list[Problem]:
        return self.plan.check(type_, nudge_id=nudge_id, properties=properties)

    def set_aside(
        self, session: Session, *, patient_id: str, type_: str, nudge_id: str | None, session_id: str | None,
        occurred_at: datetime, properties: Mapping[str, Any] | None, problems: Sequence[Problem], now: datetime,
        actor_id: str | None, idempotency_key: str | None = None, request: str | None = None,
    ) -> tuple[SetAside, list[AuditEvent]]:
        """Store the misfit (refused: problems only; quarantined: with its envelope, and the request's
        ``idempotency_key`` and fingerprint ``request``, for a retry's first answer) in the caller's
        transaction."""
        quarantined = self.mode is TrackingMode.QUARANTINE
        intake_id = new_id()
        session.execute(insert(EventIntakeRow), [{
            "id": intake_id, "patient_id": patient_id, "outcome": OUTCOME[self.mode], "type": type_[:TYPE_LEN],
            "nudge_id": nudge_id if quarantined else None, "session_id": session_id if quarantined else None,
            "occurred_at": occurred_at, "received_at": now, "plan_version": self.plan.version,
            "problems": [f"{p.field}:{p.code}" for p in problems],
            "properties": dict(properties or {}) if quarantined else {},
            "idempotency_key": idempotency_key if quarantined else None, "request": request if quarantined else None,
        }])
        result = SetAside(intake_id, self.mode, tuple(problems), self.plan.version)
        if not quarantined:  # the refusal itself is audited by the API's denial record
            return result, []
        event = AuditEvent(
            EventType.EVENT_QUARANTINED, "service", actor_id=actor_id, patient_ref=patient_id,
            nudge_id=nudge_id,
            details={"intake_id": intake_id, "type": type_[:TYPE_LEN] if _code(type_) else "invalid",
                     "problems": sorted({p.code for p in problems}), "plan_version": self.plan.version},
        )
        return result, [event]


def set_aside_answer(intake_id: str, problems: Sequence[str], plan_version: str) -> SetAside:
    """The first answer to a quarantined request, from its row's columns (an Idempotency-Key that comes again)."""
    found = tuple(Problem(field, code, "") for field, _, code in (entry.rpartition(":") for entry in problems))
    return SetAside(intake_id, TrackingMode.QUARANTINE, found, plan_version)


def _code(text: str) -> bool:
    return text.replace("_", "").isalnum() and text.isascii()
