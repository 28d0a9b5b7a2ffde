"""A validated rule set: manifest, value sets, product map and rules, with its digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nudge_engine.guardrails.digest import digest_of
from nudge_engine.guardrails.schema import Manifest, Product, Rule, ValueSet


@dataclass(frozen=True)
class RuleSet:
    manifest: Manifest
    valuesets: Mapping[str, ValueSet]
    products: Mapping[str, Product]
    rules: tuple[Rule, ...]
    root: Path | None = None
    rule_files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.manifest.version

    def canonical(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.model_dump(mode="json", by_alias=True),
            "valuesets": {k: v.model_dump(mode="json") for k, v in sorted(self.valuesets.items())},
            "products": {k: v.model_dump(mode="json") for k, v in sorted(self.products.items())},
            "rules": [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in self.rules],
        }

    @property
    def digest(self) -> str:
        cached: str | None = self.__dict__.get("_digest")
        if cached is None:
            cached = digest_of(self.canonical())
            object.__setattr__(self, "_digest", cached)
        return cached

    def with_rules(self, rules: tuple[Rule, ...]) -> RuleSet:
        """The same rule set with other rules (used by tests and replays)."""
        return RuleSet(self.manifest, self.valuesets, self.products, rules, self.root, self.rule_files)
