"""Test kit for the HTTP API: a settable clock, fake guardrails, FHIR bundles, seeded nudges, a live server.

Data is synthetic and memorable: patient ``app-ada`` (no history), ``app-bo`` (hypertension),
ids of the patient app look like ``app-<name>``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import insert, select

from nudge_engine.adapters.orm import AuditRecordRow, NudgeRow, ReadyNudgeRow, new_id
from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Category, Nudge, guarded_digest
from nudge_engine.privacy.keys import ensure_dev_secrets
from nudge_engine.services.delivery import FiredRule, Recheck, Verdict, nudge_from_row

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday, outside default quiet hours (21:00-08:00 UTC)

SNOMED = "http://snomed.info/sct"
UNSTABLE_ANGINA = "4557003"  # fake rule EX-BLOCK: blocks exercise
PREGNANCY = "77386006"  # fake rule EX-REVIEW: exercise needs review
HYPERTENSION = "38341003"  # fake rule EX-CAUTION: caution on exercise


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeGuardrails:
    """Three memorable rules over SNOMED condition codes, for exercise nudges only."""

    ruleset_digest = "sha256:fake-ruleset"

    def __init__(self) -> None:
        self.calls = 0

    def recheck(self, context: PatientContext, nudge: Nudge, at: datetime) -> Recheck:
        self.calls += 1
        codes = {
            c.code for cond in context.conditions for c in cond.codings
            if cond.clinical_status in (None, "active", "recurrence", "relapse")
        }
        if nudge.category is not Category.EXERCISE:
            return Recheck(Verdict.DELIVER, self.ruleset_digest)
        if UNSTABLE_ANGINA in codes:
            return Recheck(Verdict.BLOCK, self.ruleset_digest, fired=(FiredRule("EX-BLOCK", "block"),))
        if PREGNANCY in codes:
            return Recheck(Verdict.REVIEW, self.ruleset_digest, fired=(FiredRule("EX-REVIEW", "review"),))
        if HYPERTENSION in codes:
            return Recheck(Verdict.DELIVER, self.ruleset_digest, caution=("Check your blood pressure first",),
                           fired=(FiredRule("EX-CAUTION", "caution"),))
        return Recheck(Verdict.DELIVER, self.ruleset_digest)


def make_container(database_url: str, var_dir: Path, clock: Clock) -> Container:
    settings = ensure_dev_secrets(Settings(database_url=database_url, var_dir=var_dir, log_json=True))
    return Container(settings, clock=clock)


# --- FHIR --------------------------------------------------------------------------------------------


def patient_resource(app_id: str, *, birth: str = "1971-04-09", gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient", "id": app_id, "gender": gender, "birthDate": birth,
        "name": [{"given": ["Canary"], "family": "Quillfeather"}],
        "telecom": [{"system": "phone", "value": "555-0199-321"}],
    }


def condition(code: str, *, rid: str | None = None, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": rid or f"cond-{code}",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "clinicalStatus": {"coding": [{"code": status}]},
        "onsetDateTime": "2025-01-05",
    }


def bundle(app_id: str, *resources: dict[str, Any], with_patient: bool = True) -> dict[str, Any]:
    entries = [patient_resource(app_id)] if with_patient else []
    entries.extend(resources)
    for r in entries:
        if r["resourceType"] != "Patient":
            r.setdefault("subject", {"reference": f"Patient/{app_id}"})
    return {
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in entries],
    }


# --- catalog and ready queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogNudge:
    id: str
    category: str
    intensity: str = "none"


WALK = CatalogNudge("walk-brisk-20", "exercise", "moderate")
WATER = CatalogNudge("water-glass-morning", "hydration")
SLEEP = CatalogNudge("sleep-wind-down", "sleep")


def seed_catalog(container: Container, *nudges: CatalogNudge) -> None:
    with container.uow() as uow:
        existing = set(uow.session.scalars(select(NudgeRow.id)))
        rows = [
            {"id": n.id, "version": 1, "category": n.category, "intensity": n.intensity, "duration_min": 20,
             "tags": [], "title": f"Title of {n.id}", "body": f"Body of {n.id}", "priority": 0,
             "cooldown_hours": 72, "locale": "en-US", "content_hash": "0" * 64, "active": True,
             "updated_at": NOON, "target_segments": []}
            for n in nudges if n.id not in existing
        ]
        if rows:
            uow.session.execute(insert(NudgeRow), rows)
        uow.commit()


class _Digest(Enum):
    AS_STORED = "the nudge's content as the nudges table has it"


AS_STORED = _Digest.AS_STORED


def seed_ready(
    container: Container, patient_id: str, nudge: CatalogNudge, *, score: float = 1.0, context_version: int = 1,
    expires_at: datetime | None = None, not_before: datetime | None = None, caution: list[str] | None = None,
    review_item_id: str | None = None, ruleset_digest: str = FakeGuardrails.ruleset_digest,
    content_digest: str | _Digest | None = AS_STORED,
) -> str:
    """A ready row as a build under ``ruleset_digest`` (by default the fake rule set the app loads) queues it,
    decided on ``content_digest`` (by default :data:`AS_STORED`, the nudge's content as the ``nudges`` table has
    it; None: no digest recorded, as before migration 0009)."""
    seed_catalog(container, nudge)
    ready_id = new_id()
    if content_digest is AS_STORED:
        content_digest = content_digest_of(container, nudge.id)
    with container.uow() as uow:
        uow.session.execute(
            insert(ReadyNudgeRow),
            [{"id": ready_id, "patient_id": patient_id, "nudge_id": nudge.id, "status": "ready", "score": score,
              "caution": caution or [], "context_version": context_version, "ruleset_digest": ruleset_digest,
              "created_at": container.clock() - timedelta(hours=1), "not_before": not_before,
              "expires_at": expires_at or container.clock() + timedelta(days=1), "served_at": None,
              "review_item_id": review_item_id, "content_digest": content_digest}],
        )
        uow.commit()
    return ready_id


def content_digest_of(container: Container, nudge_id: str, *, catalog: bool = False) -> str | None:
    """The digest of ``nudge_id``'s content in the ``nudges`` table (the test apps' ``StoredNudges``), or with
    ``catalog`` in the container's catalog (an app serving the catalog's content)."""
    if catalog:
        listed = {n.id: n for n in container.catalog.nudges()}.get(nudge_id)
        return guarded_digest(listed) if listed is not None else None
    with container.uow() as uow:
        row = uow.session.execute(select(NudgeRow).where(NudgeRow.id == nudge_id)).scalar_one_or_none()
        stored = nudge_from_row(row, at=container.clock()) if row is not None else None
    return guarded_digest(stored) if stored is not None else None


def ready_status(container: Container, ready_id: str) -> str:
    with container.uow() as uow:
        return uow.session.execute(select(ReadyNudgeRow.status).where(ReadyNudgeRow.id == ready_id)).scalar_one()


def surrogate_of(container: Container, app_id: str) -> str:
    with container.uow() as uow:
        found = container.vault.find_patient(uow.session, app_id)
    assert found is not None
    return found


def audit_records(container: Container) -> list[Any]:
    """Every audit record, oldest first, as plain rows (usable after the session is gone)."""
    t = AuditRecordRow.__table__
    with container.uow() as uow:
        return list(uow.session.execute(select(t).order_by(t.c.seq)).all())


# --- a live server -----------------------------------------------------------------------------------


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", limit_concurrency=200)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
