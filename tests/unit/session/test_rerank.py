"""Session re-ranking as a pure function of the session's events."""

from __future__ import annotations

from nudge_engine.personalization.session import SessionEvent, SessionRules, rerank, summarise

RULES = SessionRules(
    behaviour_of_nudge={"walk-10": "walking", "walk-brisk": "walking"},
    behaviour_of_activity={"walk": "walking"},
    follow_ups={"breath-box": ("breath-478",), "onb-welcome": ("onb-goal", "onb-times")},
)
CATEGORY = {"walk-10": "exercise", "walk-brisk": "exercise", "bike": "exercise", "water": "hydration",
            "breath-box": "stress", "breath-478": "stress", "onb-welcome": "onboarding", "onb-goal": "onboarding",
            "onb-times": "onboarding"}


def _order(events: list[SessionEvent], candidates: list[str]) -> list[str]:
    state = summarise(events, RULES, category_of=CATEGORY.get)
    ranked = rerank([(c, CATEGORY[c]) for c in candidates], state, RULES)
    return [candidates[i] for i in ranked.order]


def test_a_completed_walk_holds_every_walking_nudge_but_not_other_exercise() -> None:
    assert _order([SessionEvent("completed", "walk-10")], ["walk-brisk", "bike", "water"]) == ["bike", "water"]


def test_an_activity_of_a_kind_holds_its_behaviour() -> None:
    assert _order([SessionEvent("activity", None, {"kind": "walk"})], ["walk-10", "water"]) == ["water"]


def test_a_dismissal_holds_the_whole_category() -> None:
    assert _order([SessionEvent("dismissed", "walk-10")], ["bike", "walk-brisk", "water"]) == ["water"]


def test_follow_ups_of_the_latest_completion_come_first_in_their_catalog_order() -> None:
    events = [SessionEvent("completed", "breath-box"), SessionEvent("completed", "onb-welcome")]
    assert _order(events, ["water", "breath-478", "onb-times", "onb-goal"]) == [
        "onb-goal", "onb-times", "breath-478", "water"]


def test_opened_and_delivered_events_change_nothing() -> None:
    events = [SessionEvent("delivered", "walk-10"), SessionEvent("opened", "walk-10")]
    assert _order(events, ["walk-10", "water"]) == ["walk-10", "water"]


def test_a_nudge_without_a_declared_behaviour_is_its_own() -> None:
    assert _order([SessionEvent("completed", "bike")], ["bike", "walk-10"]) == ["walk-10"]
