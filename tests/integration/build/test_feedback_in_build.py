"""A nudge a patient flagged "not right for me" is never planned for them again by later builds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow, ReadyNudgeRow
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.tokens import Role, TokenService
from tests.support.world import make_container, seed_cohort


class Clock:
    def __init__(self, now: object) -> None:
        self.now = now

    def __call__(self) -> object:
        return self.now


def test_a_not_right_for_me_flag_keeps_the_nudge_out_of_every_later_build(database_url: str, tmp_path: Path) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 60)
    build_cycle(container, worker="t").run()
    with container.uow() as uow:
        waiting = list(dict.fromkeys(uow.session.scalars(
            select(ReadyNudgeRow.patient_id).where(ReadyNudgeRow.status == "ready").order_by(ReadyNudgeRow.patient_id)
        )))
        app_ids = {pid: container.vault.reveal(uow.session, pid) for pid in waiting}
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock,
                         cache_ttl=0).create(role=Role.SERVICE.value, name="app").secret
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(container, token_cache_ttl=0), raise_server_exceptions=False) as client:
        # The first patient with a nudge servable now (another may be in their quiet hours, say).
        for patient_id in waiting:
            identifiers = app_ids[patient_id]
            assert identifiers is not None
            app_id = identifiers.source_id
            served = client.get(f"/v1/patients/{app_id}/next-nudge", headers=headers)
            assert served.status_code in (200, 204), served.text
            if served.status_code == 200:
                break
        assert served.status_code == 200, "no ready nudge could be served"
        flagged = served.json()["nudge"]["id"]
        feedback = client.post(f"/v1/patients/{app_id}/feedback", headers=headers,
                               json={"kind": "not_right_for_me", "nudge_id": flagged})
        assert feedback.status_code in (200, 201), feedback.text

    start = container.clock()
    for days in (3, 10):  # past every cooldown of the sample catalog's everyday nudges
        container.clock = lambda days=days: start + timedelta(days=days)  # type: ignore[misc]
        summary = build_cycle(container, worker="t").run()
        with container.uow() as uow:
            chosen = uow.session.scalar(select(PatientDecisionRow.chosen).where(
                PatientDecisionRow.cycle_id == summary.cycle_id, PatientDecisionRow.patient_id == patient_id))
            ready = set(uow.session.scalars(select(ReadyNudgeRow.nudge_id).where(
                ReadyNudgeRow.patient_id == patient_id, ReadyNudgeRow.status == "ready")))
        assert flagged not in {c["nudge"] for c in chosen or []}
        assert flagged not in ready
    container.dispose()
