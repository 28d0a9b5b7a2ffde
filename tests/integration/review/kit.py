"""A review world: a migrated database, a synthetic cohort built once, its review items, a clinician.

The cohort (seed 7) and the build at 2026-11-30 15:00 UTC are the shared world of the integration
tests; the clock is one the test moves by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from clinical_review.accounts import ClinicianAccounts
from clinical_review.model import Actor
from clinical_review.wiring import build_context
from nudge_engine.adapters.orm import AuditRecordRow, ReadyNudgeRow, ReviewItemRow
from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.privacy.keys import ensure_dev_secrets
from nudge_engine.services.build.factory import build_cycle
from tests.support.world import NOW, seed_cohort

PASSWORD = "correct horse battery staple"
COHORT = 60


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    container: Container
    clock: Clock
    clinician_id: str

    @property
    def actor(self) -> Actor:
        return Actor(self.clinician_id)


def make_world(database_url: str, var_dir: Path, *, patients: int = COHORT) -> World:
    clock = Clock()
    settings = ensure_dev_secrets(Settings(database_url=database_url, var_dir=var_dir))
    container = Container(settings, clock=clock)
    seed_cohort(container, patients)
    build_cycle(container, worker="review-tests").run()
    accounts = ClinicianAccounts(uow_factory=container.uow, audit=container.audit, clock=clock)
    clinician_id = accounts.create("dr-grace", PASSWORD)
    return World(container, clock, clinician_id)


def review_service(world: World) -> Any:
    return build_context(world.container, secure=False).service


def _rows(container: Container, model: Any, *where: Any, order: Any = None) -> list[Any]:
    """Plain rows (column name -> value), usable after the unit of work has ended."""
    table = model.__table__
    with container.uow() as uow:
        stmt = select(table).where(*where)
        if order is not None:
            stmt = stmt.order_by(*order)
        return list(uow.session.execute(stmt).all())


def items(container: Container, **where: Any) -> list[Any]:
    t = ReviewItemRow.__table__.c
    return _rows(container, ReviewItemRow, *(t[k] == v for k, v in where.items()), order=(t.created_at, t.id))


def ready_rows(container: Container, review_item_id: str) -> list[Any]:
    return _rows(container, ReadyNudgeRow, ReadyNudgeRow.__table__.c.review_item_id == review_item_id)


def audit_records(container: Container, *event_types: str) -> list[Any]:
    t = AuditRecordRow.__table__.c
    where = [t.event_type.in_(event_types)] if event_types else []
    return _rows(container, AuditRecordRow, *where, order=(t.seq,))
