"""Segment baseline: smoothed completion rate per segment × nudge.

For a patient in segments S and nudge n the estimate pools the segments' evidence under a Beta prior
centred on the nudge's overall rate::

    rate = (Σ_s completed[s, n] + k · prior[n]) / (Σ_s delivered[s, n] + k)
    prior[n] = (completed[n] + a) / (delivered[n] + a + b)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization import model_io


@dataclass(frozen=True, slots=True)
class SegmentBaseline:
    segment_ids: tuple[str, ...]
    nudge_ids: tuple[str, ...]
    delivered: npt.NDArray[np.float64]  # (segments, nudges)
    completed: npt.NDArray[np.float64]
    nudge_delivered: npt.NDArray[np.float64]  # (nudges,) over all patients
    nudge_completed: npt.NDArray[np.float64]
    prior_a: float = 1.0
    prior_b: float = 4.0
    strength: float = 20.0
    trained_at: str = "1970-01-01T00:00:00Z"

    @classmethod
    def empty(cls, segment_ids: Sequence[str], nudge_ids: Sequence[str]) -> SegmentBaseline:
        s, n = len(segment_ids), len(nudge_ids)
        return cls(tuple(segment_ids), tuple(nudge_ids), np.zeros((s, n)), np.zeros((s, n)), np.zeros(n), np.zeros(n))

    @property
    def version(self) -> str:
        h = hashlib.sha256()
        for a in (self.delivered, self.completed, self.nudge_delivered, self.nudge_completed):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((self.segment_ids, self.nudge_ids, self.prior_a, self.prior_b, self.strength)).encode())
        return f"base-{h.hexdigest()[:10]}-{self.trained_at.replace('-', '').replace(':', '')}"

    def prior(self) -> npt.NDArray[np.float64]:
        return (self.nudge_completed + self.prior_a) / (self.nudge_delivered + self.prior_a + self.prior_b)

    def fit(
        self,
        membership: npt.NDArray[np.bool_],
        actions: npt.NDArray[np.integer],
        rewards: npt.NDArray[np.floating],
        *,
        now: datetime | None = None,
    ) -> SegmentBaseline:
        """A new baseline with the logged (membership, action, reward) rows added to the counts."""
        n = len(self.nudge_ids)
        onehot = np.zeros((len(actions), n))
        onehot[np.arange(len(actions)), actions] = 1.0
        m = membership.astype(np.float64).T
        stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return SegmentBaseline(
            self.segment_ids, self.nudge_ids,
            self.delivered + m @ onehot, self.completed + m @ (onehot * rewards[:, None]),
            self.nudge_delivered + onehot.sum(0), self.nudge_completed + (onehot * rewards[:, None]).sum(0),
            self.prior_a, self.prior_b, self.strength, stamp,
        )

    def rates(
        self, membership: npt.NDArray[np.bool_], nudge_idx: npt.NDArray[np.intp] | None = None
    ) -> npt.NDArray[np.float64]:
        """(patients × nudges) smoothed rates; ``nudge_idx`` maps catalog positions to this model's nudges (-1 new)."""
        fallback = self.prior_a / (self.prior_a + self.prior_b)
        prior = self.prior()
        completed, delivered = self.completed, self.delivered
        if nudge_idx is not None and not np.array_equal(nudge_idx, np.arange(len(self.nudge_ids))):
            known = nudge_idx >= 0
            safe = np.maximum(nudge_idx, 0)
            prior = np.where(known, prior[safe], fallback)
            completed = np.where(known[None, :], completed[:, safe], 0.0)
            delivered = np.where(known[None, :], delivered[:, safe], 0.0)
        m = membership.astype(np.float32)
        c = m @ completed.astype(np.float32)
        d = m @ delivered.astype(np.float32)
        rate: npt.NDArray[np.float64] = ((c + self.strength * prior) / (d + self.strength)).astype(np.float64)
        return rate

    def to_bytes(self) -> bytes:
        header = {"segment_ids": list(self.segment_ids), "nudge_ids": list(self.nudge_ids), "prior_a": self.prior_a,
                  "prior_b": self.prior_b, "strength": self.strength, "trained_at": self.trained_at}
        arrays = {"delivered": self.delivered, "completed": self.completed,
                  "nudge_delivered": self.nudge_delivered, "nudge_completed": self.nudge_completed}
        return model_io.dump("segment_baseline", header, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> SegmentBaseline:
        h, a = model_io.load("segment_baseline", blob)
        return cls(
            tuple(h["segment_ids"]), tuple(h["nudge_ids"]), a["delivered"], a["completed"], a["nudge_delivered"],
            a["nudge_completed"], float(h["prior_a"]), float(h["prior_b"]), float(h["strength"]), str(h["trained_at"]),
        )

    def align(self, segment_ids: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Column map from another segment list into this baseline's (for membership from a newer model)."""
        col = {s: j for j, s in enumerate(segment_ids)}
        out = np.zeros((len(segment_ids), len(self.segment_ids)), dtype=bool)
        for k, s in enumerate(self.segment_ids):
            if s in col:
                out[col[s], k] = True
        return out
