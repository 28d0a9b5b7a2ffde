"""Fixtures for the API's integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The CLI configures structlog onto the runner's stderr, which is closed afterwards: reset it."""
    yield
    structlog.reset_defaults()
