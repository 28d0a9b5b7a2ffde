"""``report --out DIR`` on a simulated run, opened in headless Chromium with every network request refused.

Skipped with the reason when Playwright or /usr/bin/chromium is missing (CI installs both).
The screenshot goes to ``test-artifacts/report/report.png``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import upgrade
from nudge_engine.entrypoints.cli.report import report_cmd
from nudge_engine.experiments.simulation import Plant, simulate_weeks
from tests.support.world import make_container, seed_cohort, seeded_ids

CHROMIUM = Path(os.environ.get("NUDGE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "report"


def _write_report(tmp: Path) -> Path:
    url = f"sqlite:///{tmp / 'nudge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    container = make_container(url, tmp)
    # a plain 4x jump in reported minutes: at 2.5x, 300 patients over two-day windows put the PSI
    # (0.25 to 0.5 across runs of random surrogate ids) on the alert threshold too often
    with seeded_ids(3):
        seed_cohort(container, 300, seed=3)
        simulate_weeks(container, days=4, seed=3, plant=Plant(drift_from_day=2, drift_factor=4.0))
    container.dispose()
    app = typer.Typer()
    app.command()(report_cmd)
    out = tmp / "report"
    result = CliRunner().invoke(
        app, ["--out", str(out), "--json"], catch_exceptions=False,
        env={"NUDGE_DATABASE_URL": url, "NUDGE_VAR_DIR": str(tmp), "NUDGE_MONITOR_WINDOW_DAYS": "2",
             "NUDGE_MONITOR_REFERENCE_DAYS": "2"},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert Path(summary["html"]).exists() and Path(summary["json"]).exists()
    return out


def test_the_report_renders_offline_in_chromium_with_its_charts(tmp_path: Path) -> None:
    sync_api: Any = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI installs it")
    out = _write_report(tmp_path)
    doc = json.loads((out / "report.json").read_text())
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})

        def refuse(route: Any) -> None:
            if not route.request.url.startswith("file://"):
                requests.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.route("**/*", refuse)
        page.goto((out / "report.html").as_uri())
        assert page.title().startswith("nudge-engine report")
        assert page.locator("svg.chart").count() >= 5
        assert page.locator("svg.chart").first.bounding_box()["width"] > 300
        for section in ("#alerts", "#experiments", "#drift", "#guardrails", "#review", "#delivery"):
            assert page.locator(section).is_visible()
        assert int(page.locator("[data-alerts]").get_attribute("data-alerts")) == len(doc["alerts"])
        assert page.locator(".experiment").count() == len(doc["experiments"])
        assert page.locator("tr[data-check='feature_psi'][data-subject='activity_minutes_per_day']").count() == 1
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert requests == []  # nothing left the machine: no CDN, no fonts, no scripts
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
