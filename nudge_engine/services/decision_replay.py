"""Stored recent decisions as replay pairs for ``rules diff``: what the build decided lately.

Every candidate the guardrails saw in the most recent finished cycles (chosen, sent to review, or
blocked) is replayed with the patient's *current* stored context at the cycle's decision time.
Labels use the patient's random surrogate id, never an identifier.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from nudge_engine.adapters.context_store import load_contexts
from nudge_engine.adapters.orm import BuildCycleRow, PatientDecisionRow
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.replay import ReplayPair


def recent_decision_pairs(
    session: Session, nudges: Sequence[Nudge], *, cycles: int = 1, max_patients: int = 5000
) -> Iterator[ReplayPair]:
    """(context, nudge, decision time) of the candidates of the last ``cycles`` finished cycles."""
    by_id = {n.id: n for n in nudges}
    recent = session.execute(
        select(BuildCycleRow.id, BuildCycleRow.as_of).where(BuildCycleRow.status == "finished")
        .order_by(BuildCycleRow.started_at.desc()).limit(cycles)
    ).all()
    for cycle_id, as_of in recent:
        decisions = session.execute(
            select(PatientDecisionRow.patient_id, PatientDecisionRow.chosen, PatientDecisionRow.review,
                   PatientDecisionRow.blocked)
            .where(PatientDecisionRow.cycle_id == cycle_id).limit(max_patients)
        ).all()
        contexts = load_contexts(session, [d.patient_id for d in decisions])
        for d in decisions:
            context = contexts.get(d.patient_id)
            if context is None:  # erased since
                continue
            for entry in (*d.chosen, *d.review, *d.blocked):
                nudge = by_id.get(entry.get("nudge", ""))
                if nudge is not None:
                    yield ReplayPair(f"patient {d.patient_id[:12]} x {nudge.id}", context, nudge, as_of)
