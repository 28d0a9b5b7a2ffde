"""The personalization package is pure logic: no database, web framework or scheduler imports."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from nudge_engine.personalization.pipeline import event_windows
from tests.unit.personalization.burden_support import CATALOG, SEGMENTS

PACKAGE = Path(__file__).resolve().parents[3] / "nudge_engine" / "personalization"


def test_personalization_imports_no_sqlalchemy_fastapi_or_apscheduler() -> None:
    modules = sorted(f"nudge_engine.personalization.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "banned = {'sqlalchemy', 'fastapi', 'apscheduler', 'starlette'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_event_windows_cover_features_caps_and_the_longest_cooldown() -> None:
    every, delivered = event_windows(CATALOG, SEGMENTS)
    assert every == timedelta(days=28)
    assert delivered == timedelta(hours=2160)  # onboarding nudges: 90 days
