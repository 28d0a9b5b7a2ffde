"""Shared fixtures: the packaged rule set, compiled once per session, and small builders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.cases import CaseNudge, CasePatient, case_context, case_nudge
from nudge_engine.guardrails.compiler import CompiledRuleSet, compile_ruleset
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.guardrails.ruleset import RuleSet
from tests.support.paths import PROJECT

RULES = PROJECT / "rules"
AS_OF = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    return load_ruleset(RULES)


@pytest.fixture(scope="session")
def compiled(ruleset: RuleSet) -> CompiledRuleSet:
    return compile_ruleset(ruleset)


def patient(**profile: object) -> PatientContext:
    """A context from a case-style profile, e.g. ``patient(age=40, conditions=[...])``."""
    profile.setdefault("age", 40)
    return case_context(CasePatient.model_validate(profile), AS_OF)


def nudge(**fields: object) -> Nudge:
    return case_nudge(CaseNudge.model_validate(fields))


def rules_dir_copy(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target
