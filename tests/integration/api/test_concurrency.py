"""Concurrency through a real uvicorn server on 127.0.0.1, on SQLite and PostgreSQL.

Concurrent serves never hand out the same ready row twice; 50 concurrent duplicates of an event
with one Idempotency-Key store exactly one event and all get the same answer; a valid event and a
quarantined misfit racing with one key are answered once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from nudge_engine.adapters.orm import PatientEventRow, PatientRow, ReadyNudgeRow
from nudge_engine.adapters.orm.feedback import EventIntakeRow
from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
from nudge_engine.services.events import EventRecorder
from nudge_engine.services.tokens import TokenService
from nudge_engine.tracking.settings import DataSettings, TrackingMode
from tests.e2e.api.kit import (
    SLEEP,
    WATER,
    CatalogNudge,
    Clock,
    FakeGuardrails,
    audit_records,
    bundle,
    live_server,
    make_container,
    seed_ready,
    surrogate_of,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = make_container(database_url, tmp_path, Clock())
    yield c
    c.dispose()


@pytest.fixture
def server(container: Container) -> Iterator[tuple[str, dict[str, str]]]:
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock).create(
        role="service", name="load"
    )
    with live_server(create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                                   nudges=StoredNudges())) as base:
        yield base, {"Authorization": f"Bearer {token.secret}"}


def _all_at_once(n: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    gate = threading.Barrier(n)

    def one() -> httpx.Response:
        gate.wait()
        return call()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def _enrol(base: str, headers: dict[str, str], app_id: str) -> None:
    res = httpx.put(f"{base}/v1/patients/{app_id}/context", json=bundle(app_id), headers=headers, timeout=30)
    assert res.status_code == 201, res.text


def test_concurrent_serves_never_hand_out_the_same_ready_nudge_twice(
    container: Container, server: tuple[str, dict[str, str]]
) -> None:
    base, headers = server
    _enrol(base, headers, "app-ada")
    pid = surrogate_of(container, "app-ada")
    nudges = [WATER, SLEEP, *[CatalogNudge(f"stretch-{i}", "exercise", "light") for i in range(3)]]
    ready = {seed_ready(container, pid, n, score=1.0 - i / 10) for i, n in enumerate(nudges)}

    answers = _all_at_once(20, lambda: httpx.get(f"{base}/v1/patients/app-ada/next-nudge", headers=headers,
                                                 timeout=60))

    statuses = Counter(r.status_code for r in answers)
    served_ids = [r.json()["delivery_id"] for r in answers if r.status_code == 200]
    assert statuses == {200: len(ready), 204: 20 - len(ready)}
    assert sorted(served_ids) == sorted(ready)
    with container.uow() as uow:
        served_rows = uow.session.execute(
            select(func.count()).select_from(ReadyNudgeRow).where(ReadyNudgeRow.status == "served")
        ).scalar_one()
    assert served_rows == len(ready)
    delivered = [r for r in audit_records(container) if r.event_type == "served" and r.nudge_id is not None]
    assert len(delivered) == len(ready)


def test_fifty_concurrent_duplicates_store_exactly_one_event(
    container: Container, server: tuple[str, dict[str, str]]
) -> None:
    base, headers = server
    _enrol(base, headers, "app-ada")
    event: dict[str, Any] = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z",
                             "properties": {"minutes": 20, "kind": "walk"}}
    dup = {**headers, "Idempotency-Key": "walk-2026-03-10"}

    answers = _all_at_once(50, lambda: httpx.post(f"{base}/v1/patients/app-ada/events", json=event, headers=dup,
                                                  timeout=60))

    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["event_id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 49
    with container.uow() as uow:
        stored = uow.session.execute(select(func.count()).select_from(PatientEventRow)).scalar_one()
    assert stored == 1
    assert len([r for r in audit_records(container) if r.event_type == "activity"]) == 1
    assert len([r for r in audit_records(container) if r.event_type == "event_replayed"]) == 49


def test_concurrent_first_contexts_of_one_patient_enrol_them_once(
    container: Container, server: tuple[str, dict[str, str]]
) -> None:
    base, headers = server

    answers = _all_at_once(12, lambda: httpx.put(f"{base}/v1/patients/app-new/context", json=bundle("app-new"),
                                                 headers=headers, timeout=60))

    assert Counter(r.status_code for r in answers) == {201: 1, 200: 11}, [r.text for r in answers]
    with container.uow() as uow:
        patients = uow.session.execute(select(func.count()).select_from(PatientRow)).scalar_one()
    assert patients == 1
    assert len([r for r in audit_records(container) if r.event_type == "enrolled"]) == 1


def test_concurrent_duplicates_of_a_quarantined_event_set_it_aside_once(container: Container) -> None:
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock).create(
        role="service", name="load"
    )
    headers = {"Authorization": f"Bearer {token.secret}"}
    app = create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                     nudges=StoredNudges(), data=DataSettings(tracking_mode=TrackingMode.QUARANTINE))
    misfit: dict[str, Any] = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z",
                              "properties": {"minutes": 20, "mood": "happy"}}
    with live_server(app) as base:
        _enrol(base, headers, "app-ada")
        dup = {**headers, "Idempotency-Key": "mood-2026-03-10"}

        answers = _all_at_once(20, lambda: httpx.post(f"{base}/v1/patients/app-ada/events", json=misfit,
                                                      headers=dup, timeout=60))

    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["intake_id"] for r in answers}) == 1
    with container.uow() as uow:
        assert uow.session.execute(select(func.count()).select_from(EventIntakeRow)).scalar_one() == 1
    kinds = [r.event_type for r in audit_records(container)]
    assert (kinds.count("event_quarantined"), kinds.count("event_replayed")) == (1, 19)


def test_a_key_raced_by_a_valid_event_and_a_quarantined_misfit_is_answered_once(
    container: Container, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock).create(
        role="service", name="load"
    )
    headers = {"Authorization": f"Bearer {token.secret}", "Idempotency-Key": "walk-or-mood"}
    app = create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                     nudges=StoredNudges(), data=DataSettings(tracking_mode=TrackingMode.QUARANTINE))
    valid: dict[str, Any] = {"type": "activity", "occurred_at": "2026-03-10T11:00:00Z", "properties": {"minutes": 20}}
    misfit: dict[str, Any] = {**valid, "properties": {"minutes": 20, "mood": "happy"}}
    looked_up = EventRecorder._answered

    def slow_lookup(self: EventRecorder, *args: Any, **kwargs: Any) -> Any:
        found = looked_up(self, *args, **kwargs)
        time.sleep(0.3)  # both requests have looked the key up before either stores anything
        return found

    with live_server(app) as base:
        _enrol(base, {"Authorization": headers["Authorization"]}, "app-ada")
        monkeypatch.setattr(EventRecorder, "_answered", slow_lookup)
        bodies = iter([valid, misfit])
        answers = _all_at_once(2, lambda: httpx.post(f"{base}/v1/patients/app-ada/events", json=next(bodies),
                                                     headers=headers, timeout=60))

    with container.uow() as uow:
        events = uow.session.execute(select(func.count()).select_from(PatientEventRow)).scalar_one()
        aside = uow.session.execute(select(func.count()).select_from(EventIntakeRow)).scalar_one()
    assert events + aside == 1, [r.text for r in answers]  # one first answer for the key, whichever came first
    assert sorted(r.status_code for r in answers) == sorted([201 if events else 202, 409])
