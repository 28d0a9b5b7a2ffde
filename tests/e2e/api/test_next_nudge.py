"""GET /v1/patients/{patient_id}/next-nudge: the best ready nudge for now, never an unsafe one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, event, insert, select, update

from nudge_engine.adapters.context_store import replace_contexts
from nudge_engine.adapters.orm import (
    NudgeRow,
    PatientPreferenceRow,
    PatientRow,
    ReadyNudgeRow,
    ReviewItemRow,
    new_id,
)
from nudge_engine.adapters.orm.feedback import PatientFeedbackRow
from nudge_engine.adapters.unit_of_work import UnitOfWork
from nudge_engine.audit import trail as trail_module
from nudge_engine.audit.trail import AuditEvent
from nudge_engine.bootstrap import Container
from nudge_engine.domain.context import Coding, Condition, PatientContext
from tests.e2e.api.kit import (
    HYPERTENSION,
    NOON,
    PREGNANCY,
    SLEEP,
    SNOMED,
    UNSTABLE_ANGINA,
    WALK,
    WATER,
    Clock,
    FakeGuardrails,
    audit_records,
    condition,
    content_digest_of,
    ready_status,
    seed_catalog,
    seed_ready,
    surrogate_of,
)

Headers = dict[str, str]


def _next(client: TestClient, headers: Headers, app_id: str = "app-ada") -> tuple[int, dict[str, object] | None]:
    res = client.get(f"/v1/patients/{app_id}/next-nudge", headers=headers)
    return res.status_code, (res.json() if res.content else None)


def test_serves_the_highest_scored_ready_nudge_and_marks_it_served(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    low = seed_ready(container, pid, WATER, score=0.2)
    high = seed_ready(container, pid, SLEEP, score=0.9)

    status, body = _next(client, service_headers)

    assert status == 200 and body is not None
    assert body["delivery_id"] == high
    assert body["nudge"]["id"] == SLEEP.id  # type: ignore[index]
    assert ready_status(container, high) == "served"
    assert ready_status(container, low) == "ready"


def test_a_served_nudge_is_not_served_again_and_an_empty_queue_answers_204(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    seed_ready(container, surrogate_of(container, "app-ada"), WATER)

    assert _next(client, service_headers)[0] == 200
    assert _next(client, service_headers) == (204, None)


def test_an_expired_nudge_is_never_served_and_is_marked_expired(
    client: TestClient, container: Container, clock: Clock, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    stale = seed_ready(container, surrogate_of(container, "app-ada"), WATER, expires_at=clock() - timedelta(minutes=1))

    assert _next(client, service_headers)[0] == 204
    assert ready_status(container, stale) == "expired"


def test_a_nudge_scheduled_for_later_waits_until_its_time(
    client: TestClient, container: Container, clock: Clock, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    later = seed_ready(container, surrogate_of(container, "app-ada"), WATER, not_before=clock() + timedelta(hours=2))

    assert _next(client, service_headers)[0] == 204
    clock.advance(hours=3)
    status, body = _next(client, service_headers)
    assert status == 200 and body is not None and body["delivery_id"] == later


def test_a_nudge_past_the_end_of_its_validity_window_is_never_served(
    client: TestClient, container: Container, clock: Clock, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    seasonal = seed_ready(container, pid, WATER, score=0.9)
    plain = seed_ready(container, pid, SLEEP, score=0.1)
    with container.uow() as uow:
        uow.session.execute(update(NudgeRow).where(NudgeRow.id == WATER.id).values(
            valid_from=clock() - timedelta(days=30), valid_until=clock() + timedelta(hours=1)))
        uow.commit()
    clock.advance(hours=2)

    status, body = _next(client, service_headers)

    assert status == 200 and body is not None and body["delivery_id"] == plain
    assert ready_status(container, seasonal) == "superseded"


def test_no_nudge_is_served_in_the_patients_quiet_hours(
    client: TestClient, container: Container, clock: Clock, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    seed_ready(container, surrogate_of(container, "app-ada"), WATER)
    clock.advance(hours=10)  # 22:00 UTC: inside the default quiet hours

    assert _next(client, service_headers)[0] == 204
    outcomes = [r.details.get("outcome") for r in audit_records(container) if r.event_type == "served"]
    assert outcomes[-1] == "quiet_hours"


def test_a_patients_daily_cap_holds_at_serve_time(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    with container.uow() as uow:
        uow.session.execute(insert(PatientPreferenceRow), [{
            "patient_id": pid, "quiet_start": "22:00", "quiet_end": "07:00", "max_per_day": 1,
            "opted_out_categories": [], "opted_out_all": False, "updated_at": container.clock(),
        }])
        uow.commit()
    seed_ready(container, pid, WATER, score=0.9)
    seed_ready(container, pid, SLEEP, score=0.5)

    assert _next(client, service_headers)[0] == 200
    assert _next(client, service_headers)[0] == 204


def test_a_nudge_blocked_by_a_new_contraindication_is_never_served(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    guardrails: FakeGuardrails,
) -> None:
    enrol("app-bo")
    pid = surrogate_of(container, "app-bo")
    walk = seed_ready(container, pid, WALK, score=0.9)  # built on context version 1
    water = seed_ready(container, pid, WATER, score=0.1)
    # The context gains unstable angina between build and request.
    enrol("app-bo", condition(UNSTABLE_ANGINA))

    status, body = _next(client, service_headers, "app-bo")

    assert status == 200 and body is not None
    assert body["delivery_id"] == water
    assert ready_status(container, walk) == "superseded"
    superseded = [r for r in audit_records(container) if r.event_type == "superseded"]
    assert [(r.nudge_id, r.decision, list(r.rule_ids)) for r in superseded] == [(WALK.id, "block", ["EX-BLOCK"])]


def test_a_stale_nudge_is_rechecked_at_serve_time_when_the_context_moved_underneath(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo", condition(UNSTABLE_ANGINA))  # context version 1 already has the contraindication
    pid = surrogate_of(container, "app-bo")
    walk = seed_ready(container, pid, WALK, context_version=0)  # built before it was known

    assert _next(client, service_headers, "app-bo")[0] == 204
    assert ready_status(container, walk) == "superseded"


def test_a_nudge_queued_under_an_earlier_rule_set_is_rechecked_by_the_loaded_one(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo", condition(UNSTABLE_ANGINA))  # context version 1, unchanged since the nudge was queued
    walk = seed_ready(container, surrogate_of(container, "app-bo"), WALK, context_version=1,
                      ruleset_digest="sha256:rules-before-the-fix")

    assert _next(client, service_headers, "app-bo")[0] == 204
    assert ready_status(container, walk) == "superseded"


def test_a_nudge_whose_catalog_content_changed_since_it_was_queued_is_rechecked(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo", condition(UNSTABLE_ANGINA))  # context and rule set unchanged since the nudge was queued
    pid = surrogate_of(container, "app-bo")
    seed_catalog(container, WALK)
    with container.uow() as uow:  # decided when the catalog listed it as a drink of water, not exercise
        uow.session.execute(update(NudgeRow).where(NudgeRow.id == WALK.id).values(category="hydration",
                                                                                  intensity="none"))
        uow.commit()
    queued_as = content_digest_of(container, WALK.id)
    walk = seed_ready(container, pid, WALK, context_version=1, content_digest=queued_as)
    with container.uow() as uow:  # the catalog now says what it is: exercise, which the fake rules block here
        uow.session.execute(update(NudgeRow).where(NudgeRow.id == WALK.id).values(category="exercise",
                                                                                  intensity="moderate"))
        uow.commit()

    assert _next(client, service_headers, "app-bo")[0] == 204
    assert ready_status(container, walk) == "superseded"
    (superseded,) = [r for r in audit_records(container) if r.event_type == "superseded"]
    assert (superseded.decision, superseded.details["reason"]) == ("block", "content_changed")


@pytest.mark.parametrize(("approved_as", "served"), [("review", True), ("caution", False)])
def test_an_approved_nudge_is_served_only_for_the_rules_the_clinician_reviewed(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    approved_as: str, served: bool,
) -> None:
    """An approval covers the rules that asked for review, not one that only added a caution back then."""
    enrol("app-cy", condition(PREGNANCY))  # the fake rules now ask review for exercise (EX-REVIEW)
    pid = surrogate_of(container, "app-cy")
    item = new_id()
    with container.uow() as uow:
        uow.session.execute(insert(ReviewItemRow), [{
            "id": item, "patient_id": pid, "nudge_id": WALK.id, "status": "approved", "priority": 2,
            "rule_ids": ["EX-REVIEW"], "fired": [{"rule": "EX-REVIEW", "action": approved_as, "evidence": []}],
            "ruleset_digest": FakeGuardrails.ruleset_digest, "context_version": 0, "created_at": NOON,
            "due_at": NOON + timedelta(days=1), "expires_at": NOON + timedelta(days=3), "version": 1,
        }])
        uow.commit()
    walk = seed_ready(container, pid, WALK, context_version=0, review_item_id=item)

    status, _ = _next(client, service_headers, "app-cy")

    assert (status, ready_status(container, walk)) == ((200, "served") if served else (204, "superseded"))


def test_a_nudge_that_now_needs_review_is_not_served(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-cy", condition(PREGNANCY))
    walk = seed_ready(container, surrogate_of(container, "app-cy"), WALK, context_version=0)

    assert _next(client, service_headers, "app-cy")[0] == 204
    assert ready_status(container, walk) == "superseded"
    decisions = [r.decision for r in audit_records(container) if r.event_type == "superseded"]
    assert decisions == ["review"]


def test_a_still_safe_stale_nudge_is_served_with_the_new_caution(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo", condition(HYPERTENSION))
    seed_ready(container, surrogate_of(container, "app-bo"), WALK, context_version=0)

    status, body = _next(client, service_headers, "app-bo")

    assert status == 200 and body is not None
    assert body["caution"] == ["Check your blood pressure first"]


def test_an_unchanged_context_is_not_rechecked(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    guardrails: FakeGuardrails,
) -> None:
    enrol("app-ada")
    seed_ready(container, surrogate_of(container, "app-ada"), WALK)

    assert _next(client, service_headers)[0] == 200
    assert guardrails.calls == 0


def test_without_a_rule_set_a_stale_nudge_is_held_back(
    container: Container, service_headers: Headers, tmp_path: Path
) -> None:
    from nudge_engine.entrypoints.api import create_app
    from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
    from tests.e2e.api.kit import bundle

    settings = container.settings.model_copy(update={"rules_dir": tmp_path / "missing"})
    no_rules = Container(settings, clock=container.clock)
    with TestClient(create_app(no_rules, serve_policy=PreferenceServePolicy(), nudges=StoredNudges(),
                                      token_cache_ttl=0)) as bare:
        put = bare.put("/v1/patients/app-ada/context", json=bundle("app-ada"), headers=service_headers)
        assert put.status_code == 201
        walk = seed_ready(container, surrogate_of(container, "app-ada"), WALK, context_version=0)
        assert bare.get("/v1/patients/app-ada/next-nudge", headers=service_headers).status_code == 204
    assert ready_status(container, walk) == "ready"


def test_an_unknown_patient_answers_404(client: TestClient, service_headers: Headers) -> None:
    res = client.get("/v1/patients/app-nobody/next-nudge", headers=service_headers)
    assert res.status_code == 404
    assert res.json() == {"detail": [{"code": "not_found", "msg": "patient not found"}]}


def test_a_serve_is_audited_with_the_surrogate_and_never_the_apps_id(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    seed_ready(container, pid, WATER)

    _next(client, service_headers)

    served = [r for r in audit_records(container) if r.event_type == "served"]
    assert [(r.patient_ref, r.nudge_id, r.decision, r.actor_role) for r in served] == [
        (pid, WATER.id, "deliver", "service")
    ]
    assert all("app-ada" not in repr(tuple(r)) for r in audit_records(container))


def _serve_another_patient(
    client: TestClient, container: Container, headers: Headers, enrol: Callable[..., None]
) -> None:
    """A first serve on the app's connection: on PostgreSQL it opens the one-message path (claim in the commit)."""
    enrol("app-bob")
    seed_ready(container, surrogate_of(container, "app-bob"), WATER)
    assert _next(client, headers, "app-bob")[0] == 200


def _claim_by_statements(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL without the right to create temporary functions: the claim runs as statements, as on SQLite."""
    if container.engine.dialect.name == "sqlite":
        pytest.skip("SQLite claims by statements either way")
    monkeypatch.setattr(trail_module, "_may_create_temp", lambda connection: False)
    container.engine.dispose()  # connections that opened the one-message path go


@pytest.fixture(params=["claim", "claim-by-statements"])
def claim_path(
    request: pytest.FixtureRequest, client: TestClient, container: Container, service_headers: Headers,
    enrol: Callable[..., None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim as it travels: in the committing message (PostgreSQL), or as statements (SQLite, and
    PostgreSQL without the right to create temporary functions)."""
    if request.param == "claim-by-statements":
        _claim_by_statements(container, monkeypatch)
    _serve_another_patient(client, container, service_headers, enrol)


def _before_the_claim(
    container: Container, monkeypatch: pytest.MonkeyPatch, *changes: Callable[[UnitOfWork], None]
) -> list[int]:
    """Commit ``changes`` between the serve's read and its claim (once), each from a writer of its own;
    the list fills then."""
    commit = container.audit.append_and_commit
    done: list[int] = []

    def interleave(uow: UnitOfWork, events: Sequence[AuditEvent], **kwargs: Any) -> None:
        if not done and kwargs.get("first"):
            done.append(1)
            for change in changes:
                with container.uow() as other:
                    change(other)
                    other.commit()
        commit(uow, events, **kwargs)

    monkeypatch.setattr(container.audit, "append_and_commit", interleave)
    return done


@pytest.mark.usefixtures("claim_path")
def test_a_serve_whose_row_another_writer_takes_at_commit_commits_nothing_and_serves_the_next(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    low = seed_ready(container, pid, WATER, score=0.2)
    high = seed_ready(container, pid, SLEEP, score=0.9)
    taken: list[str] = []

    def supersede_high(other: UnitOfWork) -> None:  # a build supersedes the picked row before the claim
        taken.append(high)
        other.session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id == high).values(status="superseded"))

    if container.engine.dialect.name == "sqlite":  # the serve holds the write lock: the other writer cannot
        commit = container.audit.append_and_commit
        monkeypatch.setattr(container.audit, "append_and_commit", _in_the_same_transaction(commit, high, taken))
    else:
        _before_the_claim(container, monkeypatch, supersede_high)
    status, body = _next(client, service_headers)

    assert taken == [high]
    assert status == 200 and body is not None
    if container.engine.dialect.name == "sqlite":  # the first attempt's change rolled back with it
        assert body["delivery_id"] == high
    else:
        assert body["delivery_id"] == low and ready_status(container, high) == "superseded"
    served = [r for r in audit_records(container) if r.event_type == "served" and r.patient_ref == pid]
    assert [r.details["delivery_id"] for r in served] == [body["delivery_id"]]  # the lost attempt left no record


def _in_the_same_transaction(commit: Callable[..., None], ready_id: str, taken: list[str]) -> Callable[..., None]:
    """SQLite: the row changes inside the serve's own transaction just before its commit step."""

    def take_then_commit(uow: UnitOfWork, events: Sequence[AuditEvent], **kwargs: Any) -> None:
        if not taken:
            taken.append(ready_id)
            uow.session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id == ready_id).values(status="superseded"))
        commit(uow, events, **kwargs)

    return take_then_commit


@pytest.mark.usefixtures("claim_path")
def test_expired_rows_are_marked_with_the_claim_of_the_nudge_served(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    stale1 = seed_ready(container, pid, WALK, score=0.95, expires_at=container.clock() - timedelta(minutes=1))
    stale2 = seed_ready(container, pid, SLEEP, score=0.99, expires_at=container.clock() - timedelta(minutes=1))
    live = seed_ready(container, pid, WATER, score=0.1)
    status, body = _next(client, service_headers)
    assert status == 200 and body is not None and body["delivery_id"] == live
    assert ready_status(container, stale1) == "expired" and ready_status(container, stale2) == "expired"


@pytest.mark.usefixtures("claim_path")
def test_a_daily_cap_holds_when_a_concurrent_serve_and_a_deleted_old_serve_leave_the_count_unchanged(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    now = container.clock()
    seed_catalog(container, WALK)
    with container.uow() as uow:
        uow.session.execute(insert(PatientPreferenceRow), [{
            "patient_id": pid, "quiet_start": "23:00", "quiet_end": "06:00", "max_per_day": 1,
            "opted_out_categories": [], "opted_out_all": False, "updated_at": now,
        }])
        old = new_id()  # served three days ago: inside the 8-day window the claim counts, outside "today"
        uow.session.execute(insert(ReadyNudgeRow), [{
            "id": old, "patient_id": pid, "nudge_id": WALK.id, "status": "served", "score": 1.0, "caution": [],
            "context_version": 1, "ruleset_digest": "sha256:build", "created_at": now - timedelta(days=3, hours=1),
            "not_before": None, "expires_at": now - timedelta(days=2), "served_at": now - timedelta(days=3),
            "review_item_id": None,
        }])
        uow.commit()
    seed_ready(container, pid, WATER, score=0.9)
    other = seed_ready(container, pid, SLEEP, score=0.5)

    def serve_other(w: UnitOfWork) -> None:  # another serve of this patient commits (served 'other' just now)
        w.session.execute(update(ReadyNudgeRow).where(ReadyNudgeRow.id == other).values(status="served",
                                                                                       served_at=now))

    def drop_old(w: UnitOfWork) -> None:  # retention (or a build's unguarded supersede) drops an old serve
        w.session.execute(delete(ReadyNudgeRow).where(ReadyNudgeRow.id == old))

    done = _before_the_claim(container, monkeypatch, serve_other, drop_old)
    status, _body = _next(client, service_headers)
    with container.uow() as uow:
        today = uow.session.scalars(select(ReadyNudgeRow.id).where(
            ReadyNudgeRow.patient_id == pid, ReadyNudgeRow.status == "served",
            ReadyNudgeRow.served_at >= now - timedelta(hours=1))).all()
    assert done
    assert len(today) <= 1, f"max_per_day=1 but served today: {len(today)} (status {status})"


def test_a_flagged_nudge_queued_by_a_build_planned_before_the_flag_is_never_served(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    with container.uow() as uow:  # the patient flags WATER after a build read its shard ...
        uow.session.execute(insert(PatientFeedbackRow), [{
            "id": new_id(), "patient_id": pid, "nudge_id": WATER.id, "kind": "unsafe_for_me", "delivery_id": None,
            "review_item_id": None, "created_at": container.clock(), "lifted_at": None}])
        uow.commit()
    flagged = seed_ready(container, pid, WATER, score=0.9)  # ... and the build's writer then queues it (no review item)
    status, body = _next(client, service_headers)

    assert status == 204, body
    assert ready_status(container, flagged) == "superseded"


@pytest.mark.usefixtures("claim_path")
def test_a_contraindication_stored_between_the_serves_read_and_its_claim_stops_the_claim(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrol("app-bo")
    pid = surrogate_of(container, "app-bo")
    walk = seed_ready(container, pid, WALK, score=0.9)  # built on context version 1, as the serve reads it
    water = seed_ready(container, pid, WATER, score=0.1)
    angina = Condition(codings=(Coding(SNOMED, UNSTABLE_ANGINA),), clinical_status="active")

    def new_context(other: UnitOfWork) -> None:  # a new context version; the queue's rows untouched
        replace_contexts(other.session, [(pid, PatientContext(conditions=(angina,)))], origin="test", all_origins=True)
        other.session.execute(update(PatientRow).where(PatientRow.id == pid)
                              .values(context_version=PatientRow.context_version + 1))

    moved = _before_the_claim(container, monkeypatch, new_context)
    status, body = _next(client, service_headers, "app-bo")

    assert moved
    assert status == 200 and body is not None and body["delivery_id"] == water
    assert ready_status(container, walk) == "superseded"


@pytest.mark.usefixtures("claim_path")
def test_an_opt_out_stored_between_the_serves_read_and_its_claim_stops_the_claim(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    walk = seed_ready(container, pid, WALK)

    def opt_out(other: UnitOfWork) -> None:  # the patient had no preferences when the serve read them
        other.session.execute(insert(PatientPreferenceRow), [{
            "patient_id": pid, "quiet_start": None, "quiet_end": None, "opted_out_categories": [],
            "opted_out_all": True, "updated_at": container.clock(),
        }])

    moved = _before_the_claim(container, monkeypatch, opt_out)
    status, _body = _next(client, service_headers)

    assert moved
    assert status == 204
    assert ready_status(container, walk) == "ready"


def test_a_patient_not_served_lately_is_found_and_read_in_one_statement(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
) -> None:
    enrol("app-ada")
    pid = surrogate_of(container, "app-ada")
    seed_ready(container, pid, WALK, score=0.9)
    seed_ready(container, pid, WATER, score=0.1)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        first = _next(client, service_headers)[0]
        first_lookups = [s for s in statements if "patient_identifiers" in s]
        statements.clear()
        second = _next(client, service_headers)[0]
        second_lookups = [s for s in statements if "patient_identifiers" in s]
    finally:
        event.remove(Engine, "before_cursor_execute", record)

    assert first == second == 200
    assert len(first_lookups) == 1 and "ready_nudges" in first_lookups[0]  # the look-up is the queue read
    assert second_lookups == []  # remembered: the queue read by surrogate id
