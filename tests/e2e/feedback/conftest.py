"""Fixtures: the app with fake guardrails and memorable session rules (shared ones: ``tests/e2e/conftest.py``).

Walking nudges ``walk-10min`` and ``walk-brisk-20`` share the behaviour ``walking``; ``onb-welcome``
is followed up by ``onb-set-goal``.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.personalization.session import SessionRules
from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
from nudge_engine.tracking.settings import DataSettings
from tests.e2e.api.kit import FakeGuardrails

RULES = SessionRules(
    behaviour_of_nudge={"walk-10min": "walking", "walk-brisk-20": "walking"},
    behaviour_of_activity={"walk": "walking"},
    follow_ups={"onb-welcome": ("onb-set-goal",)},
)


@pytest.fixture
def data() -> DataSettings:
    return DataSettings()


@pytest.fixture
def app(container: Container, data: DataSettings) -> FastAPI:
    return create_app(container, guardrails=FakeGuardrails(), serve_policy=PreferenceServePolicy(),
                      nudges=StoredNudges(), token_cache_ttl=0, data=data, session_rules=RULES)
