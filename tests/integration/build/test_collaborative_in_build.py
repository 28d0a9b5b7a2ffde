"""The collaborative signal joins the ranking once there are enough outcomes, and not before."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from nudge_engine.adapters.orm import PatientDecisionRow
from nudge_engine.personalization.collaborative import CollaborativeSettings
from nudge_engine.services.build import collaborative
from nudge_engine.services.build.factory import build_cycle
from tests.support.world import make_container, seed_cohort


def _collaborative_parts(container: object, cycle_id: str) -> list[dict[str, float]]:
    with container.uow() as uow:  # type: ignore[attr-defined]
        chosen = uow.session.scalars(select(PatientDecisionRow.chosen).where(PatientDecisionRow.cycle_id == cycle_id))
        return [p["components"]["components"]["collaborative"] for picks in chosen for p in picks
                if "collaborative" in p["components"]["components"]]


def test_the_collaborative_component_is_used_only_once_there_are_enough_outcomes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 120)
    first = build_cycle(container, worker="t").run()
    assert _collaborative_parts(container, first.cycle_id) == []  # far fewer outcomes than the default minimum

    monkeypatch.setattr(collaborative, "SAMPLE_KEYS", 65536)
    monkeypatch.setattr(collaborative, "SETTINGS", CollaborativeSettings(min_outcomes=200))
    second = build_cycle(container, worker="t").run()
    parts = _collaborative_parts(container, second.cycle_id)
    container.dispose()
    assert parts and all(p["weight"] == 0.5 for p in parts)
    assert any(p["value"] != 0.0 for p in parts)
