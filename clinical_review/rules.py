"""What a clinician reads about a fired rule: title, rationale, sources, owner and sign-off."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nudge_engine.guardrails.schema import Rule
from nudge_engine.services.feedback import PATIENT_FLAG_RULE


@dataclass(frozen=True, slots=True)
class SourceInfo:
    title: str
    url: str | None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    version: str
    title: str
    rationale: str
    sources: tuple[SourceInfo, ...]
    owner: str
    sign_off: str
    follow_up: str | None


PATIENT_FLAG = RuleInfo(
    id=PATIENT_FLAG_RULE, version="-", title="Flagged by the patient as unsafe for them",
    rationale=("The patient reported this nudge as unsafe for them in the app. It is no longer planned for "
               "this patient. Approve to allow it again; reject to keep it withheld."),
    sources=(), owner="patient feedback", sign_off="not applicable", follow_up=None,
)


class RuleLibrary:
    """Rule descriptions by id; an id the loaded rule set no longer has still gets a placeholder."""

    def __init__(self, rules: Mapping[str, RuleInfo]) -> None:
        self._rules = dict(rules)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleLibrary:
        return cls({
            r.id: RuleInfo(
                id=r.id, version=r.version, title=r.title, rationale=r.rationale.strip(),
                sources=tuple(SourceInfo(s.title, _safe_url(s.url)) for s in r.sources),
                owner=r.owner, sign_off=r.sign_off.status, follow_up=r.follow_up,
            )
            for r in rules
        })

    def get(self, rule_id: str) -> RuleInfo:
        found = self._rules.get(rule_id)
        if found is not None:
            return found
        if rule_id == PATIENT_FLAG_RULE:
            return PATIENT_FLAG
        return RuleInfo(rule_id, "?", f"{rule_id} (not in the loaded rule set)", "", (), "", "unknown", None)

    def ids(self) -> list[str]:
        return sorted(self._rules)


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links are rendered as links (no ``javascript:`` from a rule file)."""
    return url if url and url.startswith(("https://", "http://")) else None
