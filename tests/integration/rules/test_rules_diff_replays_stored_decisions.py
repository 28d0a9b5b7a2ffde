"""`rules diff` replays the candidates of the last build cycle under both rule sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nudge_engine.services.build.factory import build_cycle
from tests.support.cli import run_cli
from tests.support.paths import PROJECT
from tests.support.world import make_container, seed_cohort


def test_removing_the_sauna_and_alcohol_rule_shows_the_stored_pairs_it_would_newly_allow(
    database_url: str, tmp_path: Path
) -> None:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, 40)
    build_cycle(container, worker="t").run()
    container.dispose()

    candidate = tmp_path / "rules-without-ht02"
    shutil.copytree(PROJECT / "rules", candidate)
    shutil.rmtree(candidate / "heat" / "HT-02")

    result = run_cli(["rules", "diff", str(PROJECT / "rules"), str(candidate), "--json"],
                     database_url=database_url, var_dir=tmp_path / "var")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert any("stored decisions" in s and not s.startswith("0 ") for s in doc["replayed"]["sources"])
    stored = [c for c in doc["newly_allowed"] + doc["changed"] if c["pair"].startswith("patient ")]
    assert stored, "every patient's sauna-and-beer nudge was blocked by HT-02 in the stored cycle"
    assert {c["nudge"] for c in stored} == {"heat-sauna-and-beer"}
    assert all("HT-02" in c["old"]["fired"] and "HT-02" not in c["new"]["fired"] for c in stored)
    assert doc["by_rule"]["HT-02"]["stopped_firing"] >= len(stored)
