"""Serve-time cooldowns outlast low retention: a serve it deleted still holds its nudge's cooldown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from nudge_engine.adapters.orm import ReadyNudgeRow, new_id
from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.retention import apply_retention
from nudge_engine.tracking.settings import DataSettings, RetentionMode
from tests.e2e.api.kit import CatalogNudge, audit_records, bundle, content_digest_of, seed_ready, surrogate_of

BP_NUMBERS = CatalogNudge("edu-bp-numbers", "education")  # cooldown 30 days, valid all year
LOW = DataSettings(retention_mode=RetentionMode.LOW)  # finished queue rows kept 14 days


@pytest.mark.parametrize(("served_days_ago", "expected"), [(20, 204), (40, 200)])
def test_a_serve_low_retention_deleted_still_holds_the_nudges_cooldown_at_serve_time(
    container: Container, service_headers: dict[str, str], served_days_ago: int, expected: int,
) -> None:
    assert container.catalog.cooldown_s[container.catalog.index[BP_NUMBERS.id]] == 30 * 86400
    with TestClient(create_app(container, data=LOW, token_cache_ttl=0)) as client:
        assert client.put("/v1/patients/app-ada/context", json=bundle("app-ada"),
                          headers=service_headers).status_code == 201
        pid = surrogate_of(container, "app-ada")
        served_at = container.clock() - timedelta(days=served_days_ago)
        with container.uow() as uow:
            uow.session.execute(insert(ReadyNudgeRow), [{
                "id": new_id(), "patient_id": pid, "nudge_id": BP_NUMBERS.id, "status": "served", "score": 1.0,
                "caution": [], "context_version": 1, "ruleset_digest": container.ruleset.digest,
                "created_at": served_at, "expires_at": served_at + timedelta(days=1), "served_at": served_at,
            }])
            uow.commit()
        apply_retention(container, data=LOW)
        # queued again, as a clinician's approval queues it: no build has looked at the cooldown
        seed_ready(container, pid, BP_NUMBERS, ruleset_digest=container.ruleset.digest,
                   content_digest=content_digest_of(container, BP_NUMBERS.id, catalog=True))

        served = client.get("/v1/patients/app-ada/next-nudge", headers=service_headers)

    with container.uow() as uow:
        kept = uow.session.scalar(select(func.count()).select_from(ReadyNudgeRow).where(
            ReadyNudgeRow.status == "served"))
    assert served.status_code == expected, served.text
    assert kept == (1 if expected == 200 else 0)  # the old serve is gone; a 200 is the new one
    (answer,) = [r for r in audit_records(container) if r.event_type == "served"]
    assert answer.details.get("outcome") == (None if expected == 200 else "cooldown")
