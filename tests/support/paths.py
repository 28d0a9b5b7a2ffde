"""Where the project and the shared material beside it live."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
SYNTHEA = SHARED / "data" / "synthea"
SCENARIOS = SHARED / "clinical" / "scenarios-public.json"
