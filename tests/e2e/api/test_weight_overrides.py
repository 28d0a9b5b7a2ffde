"""A per-request weight override re-ranks the patient's queued nudges and changes which one is served."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow, PatientRow
from nudge_engine.entrypoints.api import create_app
from nudge_engine.personalization.agenda import parse_weight_overrides, rescore_recorded
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.tokens import Role, TokenService
from tests.support.world import NOW, make_container, seed_cohort

OVERRIDES = ("priority:100", "novelty:100", "freshness:100", "agenda:100", "baseline:100", "predicted:100")


def _top(picks: list[dict[str, object]], overrides: dict[str, float]) -> str:
    comps = [p["components"]["components"] for p in picks]  # type: ignore[index]
    scores = [score for score, _ in rescore_recorded(comps, overrides)]  # type: ignore[arg-type]
    return str(picks[max(range(len(picks)), key=lambda i: (scores[i], -i))]["nudge"])


def test_a_weight_override_changes_the_served_nudge_and_a_bad_one_is_refused(database_url: str, tmp_path: Path) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 120)
    summary = build_cycle(container, worker="t").run()
    with container.uow() as uow:
        rows = uow.session.execute(
            select(PatientDecisionRow.patient_id, PatientDecisionRow.chosen, PatientRow.timezone)
            .join(PatientRow, PatientRow.id == PatientDecisionRow.patient_id)
            .where(PatientDecisionRow.cycle_id == summary.cycle_id)
        ).all()
        case = None
        for patient_id, chosen, tz in rows:
            local_hour = NOW.astimezone(ZoneInfo(tz)).hour
            if len(chosen or []) < 2 or not 9 <= local_hour < 20:
                continue  # quiet hours would hold every nudge back
            for text in OVERRIDES:
                if _top(chosen, parse_weight_overrides(text)) != chosen[0]["nudge"]:
                    case = (patient_id, text, _top(chosen, parse_weight_overrides(text)))
                    break
            if case:
                break
        assert case is not None, "some patient's two queued nudges rank differently under another weighting"
        patient_id, weights, expected = case
        app_id = container.vault.reveal(uow.session, patient_id).source_id  # type: ignore[union-attr]
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock,
                         cache_ttl=0).create(role=Role.SERVICE.value, name="app").secret
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(container, token_cache_ttl=0), raise_server_exceptions=False) as client:
        bad = client.get(f"/v1/patients/{app_id}/next-nudge", params={"weights": "clicks:3"}, headers=headers)
        assert bad.status_code == 422 and "weights" in bad.text
        served = client.get(f"/v1/patients/{app_id}/next-nudge", params={"weights": weights}, headers=headers)
        assert served.status_code == 200, served.text
        assert served.json()["nudge"]["id"] == expected
    container.dispose()
