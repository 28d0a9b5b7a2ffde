"""Content similarity: local, deterministic embeddings; more like this; no near-duplicates back to back."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from nudge_engine.personalization.agenda import agenda_components, content_similarity, near_duplicates
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.candidates import DropReason
from nudge_engine.personalization.pipeline import plan_batch
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.similarity import ContentSimilarity
from tests.unit.agenda.support import PROGRAMMES, Event, days, patients
from tests.unit.personalization.burden_support import CATALOG, SEGMENTS
from tests.unit.personalization.fakes import AllowAll

NOW = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)
SIM = content_similarity(CATALOG)
BOX = "stress-box-breathing"


def test_embeddings_are_learned_locally_and_the_same_every_time() -> None:
    again = ContentSimilarity.fit(CATALOG)
    assert np.array_equal(again.vectors, SIM.vectors) and again.catalog_digest == CATALOG.digest
    assert np.allclose(np.linalg.norm(SIM.vectors, axis=1), 1.0)


def test_breathing_exercises_are_near_duplicates_and_wine_recipes_are_alike() -> None:
    assert SIM.most_similar(BOX, 1)[0][0] == "stress-4-7-8"
    assert SIM.most_similar("diet-coq-au-vin", 1)[0][0] == "diet-white-wine-fish"
    nd = SIM.near_duplicates()
    assert nd[CATALOG.index[BOX], CATALOG.index["stress-4-7-8"]]
    assert not nd[CATALOG.index[BOX], CATALOG.index["ex-walk-10min"]]


def test_after_a_completed_nudge_more_like_this_favours_similar_content() -> None:
    done: list[Event] = [(NOW - days(1.2), "delivered", BOX, None), (NOW - days(1), "completed", BOX, None)]
    batch = patients([""], enrolled=NOW - days(60), events=[done])
    more = agenda_components(batch, CATALOG, PROGRAMMES, NOW)["more_like_this"][0]
    assert more[CATALOG.index["stress-nature-break"]] > more[CATALOG.index["diet-plate-method"]]
    assert more[CATALOG.index[BOX]] == 0.0  # the same nudge again is not "more like this"
    novelty = agenda_components(batch, CATALOG, PROGRAMMES, NOW)["novelty"][0]
    assert novelty[CATALOG.index["stress-4-7-8"]] < 0.2 < novelty[CATALOG.index["ex-walk-10min"]]


def test_a_near_duplicate_of_the_last_delivery_is_dropped_with_its_reason() -> None:
    delivered: list[Event] = [(NOW - days(4), "delivered", "ex-walk-10min", None),
                              (NOW - days(3), "delivered", BOX, None)]
    batch = patients([""], enrolled=NOW - days(60), events=[delivered])
    mask = near_duplicates(batch, SIM, NOW)
    assert mask[0, CATALOG.index["stress-4-7-8"]] and not mask[0, CATALOG.index[BOX]]
    policy = RankingPolicy(PolicyKind.BASELINE, SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids))
    plan = plan_batch(batch, CATALOG, SEGMENTS, policy, AllowAll(), now=NOW, rng=np.random.default_rng(1),
                      near_duplicate=mask)
    assert plan.for_patient(0).dropped["stress-4-7-8"] is DropReason.NEAR_DUPLICATE
    assert plan.reason_counts()["near_duplicate"] == int(mask.sum())


def test_near_duplicates_are_not_queued_for_the_same_patient_together() -> None:
    batch = patients([""], enrolled=NOW - days(60))
    boost = np.zeros((1, len(CATALOG)))
    boost[0, [CATALOG.index[BOX], CATALOG.index["stress-4-7-8"], CATALOG.index["stress-nature-break"]]] = [3, 2, 1]
    policy = RankingPolicy(PolicyKind.BASELINE, SegmentBaseline.empty(SEGMENTS.ids, CATALOG.ids),
                           exploration_floor=0.0).with_weights({"agenda": 1.0})

    def queued(**kw: object) -> list[str]:
        plan = plan_batch(batch, CATALOG, SEGMENTS, policy, AllowAll(), now=NOW, rng=np.random.default_rng(1),
                          per_patient=2, extra_components={"agenda": boost}, **kw)  # type: ignore[arg-type]
        return [c.nudge_id for c in plan.for_patient(0).chosen]

    assert queued() == [BOX, "stress-4-7-8"]
    assert queued(too_similar=SIM.near_duplicates()) == [BOX, "stress-nature-break"]
