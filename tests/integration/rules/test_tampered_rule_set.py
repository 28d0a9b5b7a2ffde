"""A rule file tampered so it no longer validates: `rules check` names it, production refuses to start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from nudge_engine.config import Environment, Settings
from nudge_engine.domain.errors import InvalidRuleSet
from nudge_engine.entrypoints.api import create_app
from nudge_engine.privacy.keys import ensure_dev_secrets
from tests.support.cli import run_cli
from tests.support.paths import PROJECT


def _tampered(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT / "rules", rules)
    rule = rules / "exercise" / "EX-03" / "rule.yaml"
    rule.write_text(rule.read_text().replace("action: block", "action: obliterate", 1))
    return rules


def test_rules_check_exits_1_naming_the_file_and_rule_of_a_tampered_rule(tmp_path: Path) -> None:
    rules = _tampered(tmp_path)
    result = run_cli(["rules", "check", str(rules)], database_url=f"sqlite:///{tmp_path / 'x.db'}", var_dir=tmp_path)
    assert result.exit_code == 1
    assert "EX-03" in result.stderr and "rule.yaml" in result.stderr


def test_production_start_up_refuses_a_rule_set_that_does_not_validate(database_url: str, tmp_path: Path) -> None:
    rules = _tampered(tmp_path)
    dev = ensure_dev_secrets(Settings(database_url=database_url, var_dir=tmp_path / "var", rules_dir=rules))
    production = dev.model_copy(update={"env": Environment.PRODUCTION})
    with pytest.raises(InvalidRuleSet, match="EX-03"):
        create_app(Container(production))
    # In development the service starts but says it is not ready, and serves nothing needing a re-check.
    with TestClient(create_app(Container(dev)), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and "ruleset_not_loaded" in ready.text
