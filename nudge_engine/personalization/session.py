"""Session-aware re-ranking of the ready queue: react to what the patient is doing in the app right now.

Within one app session (the ``session_id`` on events), from that session's recent events only:

* a nudge whose **behaviour** was just done (a nudge of that behaviour completed, or an activity of
  that kind reported) is not offered again in the session: after a walk, no more walking nudges;
* a nudge whose **category** was just dismissed is not offered again in the session;
* the **follow-ups** (catalog ``follow_ups``) of a nudge just completed come first, most recent
  completion first, when they are in the ready queue (they passed the build's guardrails like any other).

Behaviours come from the tracking plan (``behaviours``: activity kinds and the nudges that prompt
them); a nudge the plan does not list is a behaviour of its own. Pure: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPLETED = "completed"
DISMISSED = "dismissed"
ACTIVITY = "activity"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One event of the session, as stored (``properties`` as reported)."""

    type: str
    nudge_id: str | None
    properties: Mapping[str, Any] | None = None


class SessionRules:
    """What the re-ranking knows of nudges: behaviours (nudge and activity kind) and follow-ups."""

    def __init__(
        self,
        *,
        behaviour_of_nudge: Mapping[str, str] | None = None,
        behaviour_of_activity: Mapping[str, str] | None = None,
        follow_ups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._nudge = dict(behaviour_of_nudge or {})
        self._activity = dict(behaviour_of_activity or {})
        self._follow_ups = {k: tuple(v) for k, v in (follow_ups or {}).items()}

    @classmethod
    def from_parts(cls, *, entries: Iterable[Any], behaviour_of_nudge: Mapping[str, str],
                   behaviour_of_activity: Mapping[str, str]) -> SessionRules:
        """From catalog entries (``id``, ``follow_ups``) and the tracking plan's behaviours."""
        follow_ups = {e.id: tuple(e.follow_ups) for e in entries if getattr(e, "follow_ups", ())}
        return cls(behaviour_of_nudge=behaviour_of_nudge, behaviour_of_activity=behaviour_of_activity,
                   follow_ups=follow_ups)

    def behaviour(self, nudge_id: str) -> str:
        return self._nudge.get(nudge_id) or f"nudge:{nudge_id}"

    def activity_behaviour(self, kind: object) -> str | None:
        return self._activity.get(kind) if isinstance(kind, str) else None

    def follow_ups(self, nudge_id: str) -> tuple[str, ...]:
        return self._follow_ups.get(nudge_id, ())


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the session's events say: behaviours done, categories dismissed, follow-ups to surface."""

    done: frozenset[str]
    dismissed: frozenset[str]
    follow_ups: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.done or self.dismissed or self.follow_ups)


def summarise(
    events: Sequence[SessionEvent], rules: SessionRules, *, category_of: Callable[[str], str | None]
) -> SessionState:
    """The session state after ``events`` (oldest first)."""
    done: set[str] = set()
    dismissed: set[str] = set()
    follow: list[str] = []
    for e in events:
        if e.type == COMPLETED and e.nudge_id:
            done.add(rules.behaviour(e.nudge_id))
            follow[:0] = [f for f in rules.follow_ups(e.nudge_id) if f not in follow]  # latest first
        elif e.type == ACTIVITY:
            if e.nudge_id:
                done.add(rules.behaviour(e.nudge_id))
            kind = rules.activity_behaviour((e.properties or {}).get("kind"))
            if kind is not None:
                done.add(kind)
        elif e.type == DISMISSED and e.nudge_id:
            category = category_of(e.nudge_id)
            if category is not None:
                dismissed.add(category)
    return SessionState(frozenset(done), frozenset(dismissed), tuple(dict.fromkeys(follow)))


@dataclass(frozen=True, slots=True)
class Reranked:
    order: tuple[int, ...]  # positions into the candidates, best first
    held: tuple[int, ...]  # positions held back for this session


def rerank(
    candidates: Sequence[tuple[str, str]], state: SessionState, rules: SessionRules
) -> Reranked:
    """Re-rank ``(nudge_id, category)`` candidates given best first: drop what the session rules out,
    lift follow-ups to the front (in the state's order), keep the rest in their order."""
    if state.empty:
        return Reranked(tuple(range(len(candidates))), ())
    kept: list[int] = []
    held: list[int] = []
    for i, (nudge_id, category) in enumerate(candidates):
        if rules.behaviour(nudge_id) in state.done or category in state.dismissed:
            held.append(i)
        else:
            kept.append(i)
    rank = {nid: k for k, nid in enumerate(state.follow_ups)}
    first = sorted((i for i in kept if candidates[i][0] in rank), key=lambda i: rank[candidates[i][0]])
    rest = [i for i in kept if candidates[i][0] not in rank]
    return Reranked(tuple(first + rest), tuple(held))
