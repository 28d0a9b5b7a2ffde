"""Plan one batch of patients: features → segments → candidates → guardrails → ranking → plan.

The build calls :func:`plan_batch` once per batch (a few thousand patients) and writes the plan.
Everything is vectorised over (patients × nudges); the guardrail port is asked once per batch, only
for the pairs that survived eligibility and burden checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.batch import PatientBatch
from nudge_engine.personalization.candidates import REASON_CODE, DropReason, candidates
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.features import compute_features
from nudge_engine.personalization.guardrail_port import GuardDecision, GuardrailPort
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.ranking import RankingInput, RankingPolicy
from nudge_engine.personalization.segments import SegmentModel

_NOT_ASKED = np.int8(-1)


def event_windows(catalog: Catalog, segments: SegmentModel) -> tuple[timedelta, timedelta]:
    """How far back the build must load events: (all event types, 'delivered' events only).

    Features and caps need every event of the feature window (at least the current local week);
    cooldowns need only past deliveries, as far back as the longest cooldown in the catalog.
    """
    every = timedelta(days=max(segments.spec.features.history_days, 8))
    delivered = max(every, catalog.longest_cooldown)
    return every, delivered


def plan_batch(
    batch: PatientBatch,
    catalog: Catalog,
    segments: SegmentModel,
    policy: RankingPolicy,
    guardrails: GuardrailPort,
    *,
    now: datetime,
    rng: np.random.Generator,
    per_patient: int = 3,
    review_per_patient: int = 1,
    extra_components: Mapping[str, npt.NDArray[np.float64]] | None = None,
    row_weights: Mapping[str, npt.NDArray[np.float64]] | None = None,
    near_duplicate: npt.NDArray[np.bool_] | None = None,
    too_similar: npt.NDArray[np.bool_] | None = None,
) -> BatchPlan:
    """The plan for every patient of ``batch`` at ``now`` (timezone-aware).

    ``extra_components`` are further (patients × nudges) score components; each is weighted by the
    policy's weight of that name (0 when it has none) and recorded with the decision.
    ``row_weights`` are per-patient weights, (patients,) each, that replace the policy's weight of that
    component (per programme and per request: :func:`agenda.patient_weights`).
    ``near_duplicate`` (patients × nudges) drops candidates with reason ``near_duplicate`` before
    the guardrails are asked (:func:`agenda.near_duplicates`: too similar to the last delivery);
    ``too_similar`` (nudges × nudges, ``ContentSimilarity.near_duplicates()``) keeps near-duplicates
    out of the same patient's ready list.
    """
    if now.tzinfo is None:
        raise InvalidInput("plan_batch: field 'now': needs a time zone")
    batch.validate()
    n_p, n_n = len(batch), len(catalog)
    now_s = now.timestamp()

    features = compute_features(
        batch.events, n_patients=n_p, enrolled_at_s=batch.enrolled_at_s, now_s=now_s, settings=segments.spec.features
    )
    membership = segments.assign(features, programme=batch.programme, flags=batch.flags)
    cand = candidates(batch, catalog, membership, segments.ids, now=now)
    if near_duplicate is not None:
        if near_duplicate.shape != (n_p, n_n):
            raise InvalidInput(f"plan_batch: field 'near_duplicate': shape {near_duplicate.shape}, "
                               f"expected {(n_p, n_n)}")
        cand.reason[cand.survives & near_duplicate] = REASON_CODE[DropReason.NEAR_DUPLICATE]

    rows, nudges = np.nonzero(cand.survives)
    pair_nudges: npt.NDArray[np.int32] = nudges.astype(np.int32)
    verdict = guardrails.decide(batch.patient_idx[rows], pair_nudges)
    verdict.check(len(rows))
    decision = np.full((n_p, n_n), _NOT_ASKED, dtype=np.int8)
    decision[rows, nudges] = verdict.decision
    pair_index = np.full((n_p, n_n), -1, dtype=np.int64)
    pair_index[rows, nudges] = np.arange(len(rows))

    permitted = (decision == GuardDecision.DELIVER) | (decision == GuardDecision.CAUTION)
    caution = decision == GuardDecision.CAUTION
    behaviour = features.behaviour_matrix()
    inp = RankingInput(
        behaviour=behaviour, membership=membership, segment_ids=segments.ids,
        nudge_ids=catalog.ids, nudge_category=catalog.category_code, priority=catalog.priority,
        permitted=permitted, caution=caution, extra=dict(extra_components or {}), weights=dict(row_weights or {}),
        too_similar=too_similar,
    )
    ranking = policy.rank(inp, rng=rng, k=per_patient)

    # chosen
    c_rows, c_rank = np.nonzero(ranking.chosen >= 0)
    c_nudge = ranking.chosen[c_rows, c_rank]
    c_pair = pair_index[c_rows, c_nudge]
    with_caution = caution[c_rows, c_nudge]
    empty: tuple[str, ...] = ()
    c_caution = [tuple(verdict.caution[p]) if w else empty for p, w in zip(c_pair, with_caution, strict=True)]
    c_fired = [tuple(verdict.fired[p]) if w else empty for p, w in zip(c_pair, with_caution, strict=True)]

    # review: route the best-scoring few per patient to a clinician
    r_rows, r_nudge = np.nonzero(decision == GuardDecision.REVIEW)
    routed = _top_per_row(r_rows, -ranking.mean_score[r_rows, r_nudge], review_per_patient)
    b_rows, b_nudge = np.nonzero(decision == GuardDecision.BLOCK)
    d_rows, d_nudge = np.nonzero(~cand.survives)

    r_pair, b_pair = pair_index[r_rows, r_nudge], pair_index[b_rows, b_nudge]
    eligible = cand.reason != REASON_CODE[DropReason.NOT_ELIGIBLE]
    return BatchPlan(
        patient_idx=batch.patient_idx, nudge_ids=catalog.ids, segment_ids=segments.ids, membership=membership,
        model_version=policy.version, segment_version=segments.version, catalog_digest=catalog.digest,
        ruleset_digest=verdict.ruleset_digest, weights=policy.score_weights.as_dict(),
        chosen_row=c_rows.astype(np.int32), chosen_nudge=c_nudge.astype(np.int32), chosen_rank=c_rank.astype(np.int8),
        chosen_score=ranking.score[c_rows, c_rank], chosen_propensity=ranking.propensity[c_rows, c_rank],
        chosen_explored=ranking.explored[c_rows] & (c_rank == 0),
        chosen_not_before_s=cand.earliest_s[c_rows, c_nudge],
        chosen_caution=c_caution, chosen_fired=c_fired,
        chosen_components={k: v[c_rows, c_rank] for k, v in ranking.components.items()},
        review_row=r_rows.astype(np.int32), review_nudge=r_nudge.astype(np.int32),
        review_fired=[tuple(verdict.fired[p]) for p in r_pair],
        review_escalation=[verdict.escalation[p] for p in r_pair], review_routed=routed,
        blocked_row=b_rows.astype(np.int32), blocked_nudge=b_nudge.astype(np.int32),
        blocked_fired=[tuple(verdict.fired[p]) for p in b_pair],
        blocked_escalation=[verdict.escalation[p] for p in b_pair],
        dropped_row=d_rows.astype(np.int32), dropped_nudge=d_nudge.astype(np.int32),
        dropped_reason=cand.reason[d_rows, d_nudge],
        days_since_delivery=features.days_since_delivery,
        eligible_count=eligible.sum(axis=1).astype(np.int32),
        permitted=permitted, caution=caution, behaviour=behaviour,
        score_parts=ranking.parts, row_weights=ranking.weights,
    )


def _top_per_row(rows: npt.NDArray[np.intp], key: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.bool_]:
    """Mark the ``k`` smallest keys of each row (rows need not be sorted)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((key, rows))
    sorted_rows = rows[order]
    first = np.searchsorted(sorted_rows, sorted_rows, side="left")
    rank = np.arange(len(rows)) - first
    out = np.zeros(len(rows), dtype=bool)
    out[order] = rank < k
    return out
