"""Segment membership: declarative segments from flags and states, plus learned behaviour clusters.

Learned clusters are fitted (KMeans, fixed seed) on patients with enough history and apply only to
such patients; everybody else gets the declarative segments alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.features import (
    ACTIVITY_LEVELS,
    BEHAVIOUR_FEATURES,
    ENGAGEMENT_STATES,
    PatientFeatures,
)
from nudge_engine.personalization.segment_spec import ClusterSettings, SegmentSpec

# Direction of "more engaged" in standardised behaviour features (used only to name clusters in order).
_ENGAGEMENT_DIRECTION = np.array([1.0, 1.0, -0.5, 1.0, 1.0, 1.0, -1.0])


@dataclass(frozen=True, slots=True)
class BehaviourClusters:
    """Nearest-centroid assignment in standardised behaviour-feature space. Cluster 0 is the least engaged."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    centroids: npt.NDArray[np.float64]
    settings: ClusterSettings
    trained_at: str
    n_fitted: int

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f"{self.settings.prefix}_{i + 1}" for i in range(len(self.centroids)))

    def assign(self, features: PatientFeatures) -> npt.NDArray[np.int64]:
        """Cluster per patient, or -1 where the patient has too little history."""
        z = (features.behaviour_matrix() - self.mean) / self.scale
        d = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        out: npt.NDArray[np.int64] = d.argmin(axis=1).astype(np.int64)
        out[features.history_events < self.settings.min_events] = -1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "kmeans", "features": list(BEHAVIOUR_FEATURES), "mean": self.mean.tolist(),
            "scale": self.scale.tolist(), "centroids": self.centroids.tolist(),
            "settings": self.settings.model_dump(), "trained_at": self.trained_at, "n_fitted": self.n_fitted,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BehaviourClusters:
        if list(doc["features"]) != list(BEHAVIOUR_FEATURES):
            raise InvalidInput("behaviour clusters: field 'features': fitted on a different feature set")
        return cls(
            np.array(doc["mean"], dtype=np.float64), np.array(doc["scale"], dtype=np.float64),
            np.array(doc["centroids"], dtype=np.float64), ClusterSettings.model_validate(doc["settings"]),
            str(doc["trained_at"]), int(doc["n_fitted"]),
        )


def fit_behaviour_clusters(
    features: PatientFeatures, settings: ClusterSettings, *, now: datetime | None = None
) -> BehaviourClusters | None:
    """Fit KMeans on patients with enough history; ``None`` when there are too few of them."""
    from sklearn.cluster import KMeans

    x = features.behaviour_matrix()[features.history_events >= settings.min_events]
    if len(x) < max(10 * settings.k, 50):
        return None
    if len(x) > settings.max_fit_patients:
        pick = np.random.default_rng(settings.seed).choice(len(x), settings.max_fit_patients, replace=False)
        x = x[np.sort(pick)]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    km = KMeans(n_clusters=settings.k, random_state=settings.seed, n_init=4).fit(z)
    centroids = np.asarray(km.cluster_centers_, dtype=np.float64)
    centroids = centroids[np.argsort(centroids @ _ENGAGEMENT_DIRECTION, kind="stable")]
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return BehaviourClusters(mean, scale, centroids, settings, stamp, len(x))


class SegmentModel:
    """Declarative segments (from the spec) followed by learned clusters (if fitted)."""

    def __init__(self, spec: SegmentSpec, clusters: BehaviourClusters | None = None) -> None:
        self.spec = spec
        self.clusters = clusters
        self.declarative_ids: tuple[str, ...] = tuple(s.id for s in spec.segments)
        self.ids: tuple[str, ...] = self.declarative_ids + (clusters.ids if clusters else ())
        blob = json.dumps(
            {"spec": spec.model_dump(mode="json"), "clusters": clusters.to_json() if clusters else None},
            sort_keys=True,
        ).encode()
        self.version = f"seg-{spec.version}-{hashlib.sha256(blob).hexdigest()[:10]}"

    def assign(
        self,
        features: PatientFeatures,
        *,
        programme: npt.NDArray[np.str_],
        flags: Mapping[str, npt.NDArray[np.bool_]],
    ) -> npt.NDArray[np.bool_]:
        """Membership matrix (patients × ``ids``)."""
        n = len(features)
        missing = sorted(set(self.spec.flags) - set(flags))
        if missing:
            raise InvalidInput(f"PatientBatch: field 'flags': missing flag(s) {', '.join(missing)}")
        out = np.zeros((n, len(self.ids)), dtype=bool)
        for j, seg in enumerate(self.spec.segments):
            w = seg.when
            m = np.ones(n, dtype=bool)
            for f in w.flags_all:
                m &= flags[f]
            if w.flags_any:
                m &= np.logical_or.reduce([flags[f] for f in w.flags_any])
            for f in w.flags_none:
                m &= ~flags[f]
            if w.programme:
                m &= np.isin(programme, np.array(w.programme))
            if w.engagement:
                m &= np.isin(features.engagement, [ENGAGEMENT_STATES.index(e) for e in w.engagement])
            if w.activity:
                m &= np.isin(features.activity_level, [ACTIVITY_LEVELS.index(a) for a in w.activity])
            out[:, j] = m
        if self.clusters is not None:
            cluster = self.clusters.assign(features)
            has = cluster >= 0
            out[np.flatnonzero(has), len(self.declarative_ids) + cluster[has]] = True
        return out
