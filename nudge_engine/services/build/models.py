"""The ranking policy a build uses: the newest trained model, or the cold-start baseline.

Models are stored in ``model_versions`` with their own serialisation (no pickle); the version
string is stamped on every decision.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import ModelVersionRow
from nudge_engine.personalization.baseline import SegmentBaseline
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.segments import SegmentModel

BASELINE_KIND = "segment_baseline"


def current_policy(session: Session, *, catalog: Catalog, segments: SegmentModel) -> RankingPolicy:
    """The newest stored segment baseline aligned to today's catalog, or an untrained one."""
    row = session.scalars(
        select(ModelVersionRow).where(ModelVersionRow.kind == BASELINE_KIND).order_by(ModelVersionRow.created_at.desc())
    ).first()
    if row is not None and row.blob:
        baseline = SegmentBaseline.from_bytes(row.blob)
        if baseline.nudge_ids == catalog.ids and baseline.segment_ids == segments.ids:
            return RankingPolicy(PolicyKind.BASELINE, baseline)
    return RankingPolicy(PolicyKind.BASELINE, SegmentBaseline.empty(segments.ids, catalog.ids))
