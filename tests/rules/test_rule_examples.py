"""Every rule's example cases (kept beside it) pass, and every rule has both kinds of case."""

from __future__ import annotations

import pytest

from nudge_engine.guardrails.cases import Case, check_case, load_cases
from nudge_engine.guardrails.compiler import CompiledRuleSet, compile_ruleset
from nudge_engine.guardrails.loader import load_ruleset
from tests.support.paths import PROJECT

RULES = PROJECT / "rules"
_RULESET = load_ruleset(RULES)
_CASES = load_cases(RULES, {r.id for r in _RULESET.rules})
EXAMPLES = [(rc.rule_id, case) for rc in _CASES for case in rc.cases]


@pytest.fixture(scope="module")
def compiled() -> CompiledRuleSet:
    return compile_ruleset(_RULESET)


def test_every_rule_has_a_must_fire_and_a_must_not_fire_case() -> None:
    kinds = {rc.rule_id: {c.expect for c in rc.cases} for rc in _CASES}
    assert set(kinds) == {r.id for r in _RULESET.rules}
    assert {rid for rid, k in kinds.items() if k != {"fire", "no_fire"}} == set()


@pytest.mark.parametrize(("rule_id", "case"), EXAMPLES, ids=[f"{rid}: {c.name}" for rid, c in EXAMPLES])
def test_rule_example(compiled: CompiledRuleSet, rule_id: str, case: Case) -> None:
    assert list(check_case(compiled, rule_id, case)) == []
