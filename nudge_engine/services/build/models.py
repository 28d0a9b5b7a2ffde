"""The ranking policy a build uses: the newest trained model, or the cold-start baseline.

Models are stored in ``model_versions`` with their own serialisation (no pickle) by the retraining
job (:mod:`nudge_engine.services.retraining`); the version string is stamped on every decision.
The bandit takes over from the segment baseline once it has learned from ``BANDIT_MIN_ROWS``
logged decisions; until then Thompson sampling would mostly explore.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import ModelVersionRow
from nudge_engine.personalization.bandit import LinearThompson
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.context import condition_pairs, context_names
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.segments import SegmentModel

BASELINE_KIND = "segment_baseline"
BANDIT_KIND = "bandit"
BANDIT_MIN_ROWS = 5000


def latest_model(session: Session, kind: str) -> ModelVersionRow | None:
    return session.scalars(
        select(ModelVersionRow).where(ModelVersionRow.kind == kind).order_by(ModelVersionRow.created_at.desc())
    ).first()


class PolicyFamily:
    """The build's default policy and, for experiment arms, the same models under another policy kind."""

    def __init__(self, default: RankingPolicy, *, catalog: Catalog, segments: SegmentModel) -> None:
        self.default = default
        self._catalog = catalog
        self._segments = segments
        self._made: dict[PolicyKind, RankingPolicy] = {default.kind: default}

    def of(self, kind: PolicyKind) -> RankingPolicy:
        found = self._made.get(kind)
        if found is None:
            bandit = self.default.bandit
            if kind is PolicyKind.BANDIT and bandit is None:  # an arm asks for it before any training
                bandit = LinearThompson(context_names(self._segments.ids), self._catalog.ids,
                                        self._catalog.category_code,
                                        interactions=condition_pairs(self._segments.spec))
            found = self._made[kind] = RankingPolicy(kind, self.default.baseline, bandit)
        return found


def current_policy(session: Session, *, catalog: Catalog, segments: SegmentModel) -> RankingPolicy:
    """The newest stored models aligned to today's catalog and segments, or an untrained baseline."""
    baseline = SegmentBaseline.empty(segments.ids, catalog.ids)
    row = latest_model(session, BASELINE_KIND)
    if row is not None and row.blob:
        stored = SegmentBaseline.from_bytes(row.blob)
        if stored.nudge_ids == catalog.ids and stored.segment_ids == segments.ids:
            baseline = stored
    bandit_row = latest_model(session, BANDIT_KIND)
    if bandit_row is not None and bandit_row.blob and int((bandit_row.metrics or {}).get("rows", 0)) >= BANDIT_MIN_ROWS:
        bandit = LinearThompson.from_bytes(bandit_row.blob)
        if bandit.arm_ids == catalog.ids:
            return RankingPolicy(PolicyKind.BANDIT, baseline, bandit)
    return RankingPolicy(PolicyKind.BASELINE, baseline)
