"""Part of a :class:`PatientBatch`: the patients of one experiment arm, planned with that arm's policy.

``patient_idx`` is kept as it was, so the guardrail port and the outcomes still address the shard's
patients; events and the review, rejection, suppression and folded-delivery pairs are re-indexed to the slice's rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.batch import PatientBatch, PatientPrefs


def take_rows(batch: PatientBatch, rows: npt.NDArray[np.intp]) -> PatientBatch:
    """The patients at ``rows`` (ascending positions in ``batch``) as a batch of their own."""
    position = np.full(len(batch), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))

    def pairs(kind: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        old_rows, nudges = getattr(batch, f"{kind}_rows"), getattr(batch, f"{kind}_nudges")
        keep = position[old_rows] >= 0
        return position[old_rows[keep]].astype(np.int32), nudges[keep]

    folded_rows, folded_nudges = pairs("folded")
    rejected_rows, rejected_nudges = pairs("rejected")
    folded_delivered_s = batch.folded_delivered_s[position[batch.folded_rows] >= 0]

    events = batch.events.select(position[batch.events.patient_row] >= 0)
    events = replace(events, patient_row=position[events.patient_row].astype(np.int32))
    prefs = PatientPrefs(*(getattr(batch.prefs, name)[rows] for name in PatientPrefs.__slots__))
    pending_rows, pending_nudges = pairs("pending_review")
    suppressed_rows, suppressed_nudges = pairs("suppressed")
    return PatientBatch(
        patient_idx=batch.patient_idx[rows], tz=batch.tz[rows], locale=batch.locale[rows],
        programme=batch.programme[rows], enrolled_at_s=batch.enrolled_at_s[rows],
        flags={name: values[rows] for name, values in batch.flags.items()}, prefs=prefs, events=events,
        pending_review_rows=pending_rows, pending_review_nudges=pending_nudges,
        suppressed_rows=suppressed_rows, suppressed_nudges=suppressed_nudges,
        folded_rows=folded_rows, folded_nudges=folded_nudges, folded_delivered_s=folded_delivered_s,
        rejected_rows=rejected_rows, rejected_nudges=rejected_nudges,
    )
