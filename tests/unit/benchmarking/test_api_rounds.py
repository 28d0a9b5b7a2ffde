"""The API benchmark's rounds pool into one run: rates over the summed time, percentiles of all requests."""

from __future__ import annotations

import pytest

from benchmarks.bench_api import GRID, Result, merged


def _round(requests: int, seconds: float, low_ms: float, high_ms: float) -> Result:
    """A round whose latencies spread evenly from ``low_ms`` to ``high_ms``, as the benchmark reads wrk's."""
    percentiles = [(p, low_ms + (high_ms - low_ms) * p / 100) for p in (0.0, *GRID, 100.0)]
    p50, p99 = (low_ms + (high_ms - low_ms) * q for q in (0.5, 0.99))
    return Result("sqlite", "next-nudge", requests / seconds, p50, p99, requests, 0, {200: requests},
                  seconds, percentiles)


def test_two_rounds_pool_into_the_distribution_of_all_their_requests() -> None:
    fast, slow = _round(1000, 10.0, 0.0, 10.0), _round(1000, 20.0, 10.0, 20.0)

    pooled = merged([fast, slow])

    assert pooled.requests == 2000 and pooled.statuses == {200: 2000} and pooled.rounds == 2
    assert pooled.rps == pytest.approx(2000 / 30.0)
    assert pooled.p50_ms == pytest.approx(10.0, abs=0.05)  # evenly spread over 0-20 ms
    assert pooled.p99_ms == pytest.approx(19.8, abs=0.05)


def test_rounds_weigh_by_their_requests() -> None:
    many, few = _round(9000, 10.0, 0.0, 10.0), _round(1000, 10.0, 100.0, 110.0)

    pooled = merged([many, few])

    assert pooled.p50_ms == pytest.approx(50 / 90 * 10, abs=0.05)
    assert 100.0 <= pooled.p99_ms <= 110.0  # the slowest tenth of the requests are the second round's
    assert pooled.p99_ms == pytest.approx(109.0, abs=0.1)


def test_a_single_round_is_reported_as_it_ran() -> None:
    one = _round(500, 5.0, 1.0, 3.0)

    assert merged([one]) is one
