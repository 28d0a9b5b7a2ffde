"""The next-nudge answer is written without a pydantic model per serve; it must be the model's own JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from nudge_engine.domain.nudge import Category, Intensity, Nudge
from nudge_engine.entrypoints.api.routes.patients import next_nudge_body
from nudge_engine.entrypoints.api.schemas import NextNudgeRead, NudgeContentRead
from nudge_engine.services.delivery import ServedNudge

WATER = Nudge(id="water-500", category=Category.HYDRATION, intensity=Intensity.NONE, duration_min=None,
              tags=frozenset({"fluid_intake", "daily"}), title='Drink a "glass" of water', body="Ünd \\ 500 mL\n")
WALK = Nudge(id="walk-10", category=Category.EXERCISE, intensity=Intensity.LIGHT, duration_min=10,
             tags=frozenset(), title="Walk", body="Ten minutes ☀")
TIMES = [
    datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
    datetime(2026, 3, 1, 9, 30, 0, 500, tzinfo=ZoneInfo("UTC")),
    datetime(2026, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 3, 1, 9, 30, 7, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
]


def _model_json(served: ServedNudge) -> bytes:
    n = served.nudge
    return NextNudgeRead(
        delivery_id=served.delivery_id,
        nudge=NudgeContentRead(id=n.id, category=n.category, intensity=n.intensity, duration_min=n.duration_min,
                               tags=sorted(n.tags), title=n.title, body=n.body),
        caution=list(served.caution), served_at=served.served_at, expires_at=served.expires_at,
    ).model_dump_json().encode()


@pytest.mark.parametrize("nudge", [WATER, WALK])
@pytest.mark.parametrize("served_at", TIMES)
def test_the_answer_is_byte_for_byte_the_response_models_json(nudge: Nudge, served_at: datetime) -> None:
    for caution in ((), ("Sip slowly: fluid restriction 1500 mL/d", 'Say "stop" — if dizzy')):
        served = ServedNudge("0d2c4b6a8e0f4a1b9c3d5e7f9a1b3c5d", nudge, caution, served_at,
                             served_at + timedelta(days=2, microseconds=7), "sha256:ab", rechecked=False)
        assert next_nudge_body(served) == _model_json(served)
        assert next_nudge_body(served) == _model_json(served)  # the nudge's part now comes from the cache
