"""Fixtures: the app with fake guardrails (the shared fixtures are in ``tests/e2e/conftest.py``)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.delivery import PreferenceServePolicy, StoredNudges
from tests.e2e.api.kit import FakeGuardrails


@pytest.fixture
def guardrails() -> FakeGuardrails:
    return FakeGuardrails()


@pytest.fixture
def app(container: Container, guardrails: FakeGuardrails) -> FastAPI:
    return create_app(container, guardrails=guardrails, serve_policy=PreferenceServePolicy(), nudges=StoredNudges(),
                      token_cache_ttl=0)
