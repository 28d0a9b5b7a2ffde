"""The collaborative component: absent until there are enough outcomes, and compared offline with the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.personalization.collaborative import CollaborativeSettings, ItemFactors, compare_in_simulator
from nudge_engine.personalization.segment_spec import load_segment_spec

IDS = ("walk", "bike", "swim", "water", "sleep")


def _two_tastes(patients: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Half the patients complete the exercise nudges, half the others; everyone got each nudge 4 times."""
    delivered = np.full((patients, len(IDS)), 4.0)
    likes_exercise = np.arange(patients) % 2 == 0
    completed = np.where(likes_exercise[:, None], [4, 4, 4, 0, 0], [0, 0, 0, 4, 4]).astype(np.float64)
    return delivered, completed


def test_there_is_no_model_until_the_population_has_enough_outcomes() -> None:
    delivered, completed = _two_tastes(10)
    assert ItemFactors.fit(delivered, completed, IDS, CollaborativeSettings(min_outcomes=1_000)) is None


def test_a_patient_who_walked_is_predicted_to_like_swimming_more_than_sleep_advice() -> None:
    delivered, completed = _two_tastes()
    factors = ItemFactors.fit(delivered, completed, IDS, CollaborativeSettings(min_outcomes=100, rank=2))
    assert factors is not None
    walker = np.array([[3.0, 0, 0, 0, 0]]), np.array([[3.0, 0, 0, 0, 0]])

    (row,) = factors.component(*walker)

    assert row[IDS.index("swim")] > row[IDS.index("sleep")]


def test_patients_with_too_little_history_get_no_collaborative_score() -> None:
    delivered, completed = _two_tastes()
    factors = ItemFactors.fit(delivered, completed, IDS, CollaborativeSettings(min_outcomes=100))
    assert factors is not None

    assert not factors.component(np.array([[1.0, 0, 0, 0, 0]]), np.array([[1.0, 0, 0, 0, 0]])).any()


@pytest.mark.slow
def test_offline_the_collaborative_component_is_compared_with_the_segment_baseline() -> None:
    catalog = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml")
    spec = load_segment_spec(PACKAGE_ROOT / "data" / "segments.yaml")

    first = compare_in_simulator(catalog, spec)
    again = compare_in_simulator(catalog, spec)

    print("\n" + first.as_text())
    assert first.as_json() == again.as_json()  # fixed seeds: the same comparison every run
    base, collab = first.truth["segment baseline"], first.truth["segment baseline + collab."]
    assert collab >= base - 0.005  # never materially worse than the baseline it is added to
    for name in first.truth:
        assert {"ips", "snips", "dr"} <= set(first.estimates[name])
