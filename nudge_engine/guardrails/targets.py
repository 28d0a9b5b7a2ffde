"""Which nudges a rule branch applies to (category, intensity, tags, duration; ``any``/``all``)."""

from __future__ import annotations

from dataclasses import dataclass

from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.schema import Target


@dataclass(frozen=True, slots=True)
class TargetMatcher:
    any_nudge: bool
    categories: frozenset[str] | None
    intensities: frozenset[str] | None
    any_tag: frozenset[str] | None
    all_tags: frozenset[str] | None
    min_duration: int | None
    any_of: tuple[TargetMatcher, ...] | None
    all_of: tuple[TargetMatcher, ...] | None

    @classmethod
    def compile(cls, target: Target) -> TargetMatcher:
        def opt(values: list[str] | None) -> frozenset[str] | None:
            return frozenset(str(v) for v in values) if values is not None else None

        return cls(
            any_nudge=target.any_nudge,
            categories=opt([c.value for c in target.category] if target.category is not None else None),
            intensities=opt([i.value for i in target.intensity] if target.intensity is not None else None),
            any_tag=opt(target.any_tag),
            all_tags=opt(target.all_tags),
            min_duration=target.min_duration,
            any_of=tuple(cls.compile(t) for t in target.any) if target.any is not None else None,
            all_of=tuple(cls.compile(t) for t in target.all) if target.all is not None else None,
        )

    def matches(self, nudge: Nudge) -> bool:
        if self.any_nudge:
            return True
        if self.categories is not None and nudge.category.value not in self.categories:
            return False
        if self.intensities is not None and nudge.intensity.value not in self.intensities:
            return False
        if self.any_tag is not None and self.any_tag.isdisjoint(nudge.tags):
            return False
        if self.all_tags is not None and not self.all_tags <= nudge.tags:
            return False
        # An unknown duration could be long enough: it matches (conservative).
        if self.min_duration is not None and nudge.duration_min is not None and nudge.duration_min < self.min_duration:
            return False
        if self.any_of is not None and not any(t.matches(nudge) for t in self.any_of):
            return False
        return self.all_of is None or all(t.matches(nudge) for t in self.all_of)
