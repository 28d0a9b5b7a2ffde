"""Browser fixtures: Debian's headless Chromium driven by Playwright, a live uvicorn on 127.0.0.1.

Skipped with the reason when Playwright or /usr/bin/chromium is missing (CI installs both).
Screenshots go to ``test-artifacts/review/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clinical_review.accounts import ClinicianAccounts
from nudge_engine.entrypoints.api import create_app
from nudge_engine.services.tokens import TokenService
from tests.e2e.api.kit import live_server
from tests.integration.review.kit import World, make_world

CHROMIUM = Path(os.environ.get("NUDGE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "review"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module.

    Not session-scoped: Playwright's sync API keeps an asyncio loop marked as running
    in the main thread while it is open, and later tests that start a loop of their own must not see it.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests skipped: {CHROMIUM} is missing (CI installs it: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(database_url, tmp_path)
    yield w
    w.container.dispose()


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    with live_server(create_app(world.container, token_cache_ttl=0)) as url:
        yield url


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Any:
    """``shot(page, "step")`` saves a screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def take(page: Any, step: str) -> Path:
        path = ARTIFACTS / f"{name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def accounts(world: World) -> ClinicianAccounts:
    return ClinicianAccounts(uow_factory=world.container.uow, audit=world.container.audit, clock=world.clock)


@pytest.fixture
def clinician_token(world: World) -> str:
    tokens = TokenService(uow_factory=world.container.uow, audit=world.container.audit, clock=world.clock,
                          cache_ttl=0)
    return tokens.create(role="clinician", name="review e2e").secret


@pytest.fixture
def service_token(world: World) -> str:
    tokens = TokenService(uow_factory=world.container.uow, audit=world.container.audit, clock=world.clock,
                          cache_ttl=0)
    return tokens.create(role="service", name="patient app e2e").secret
