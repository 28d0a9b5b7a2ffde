"""Contextual bandit: Bayesian linear regression per nudge with a hierarchical prior, Thompson sampling.

For nudge ``a`` and patient context ``x`` the expected reward is ``φ(x) · θ_a``, where ``φ(x)`` is the
context vector followed by the products of the named ``interactions`` (pairs of context features,
for example two conditions held together). Priors shrink each nudge towards the pooled model of its
category, and each category towards the overall completion rate, so a new or rarely shown nudge
starts from what similar nudges achieved::

    θ_c ~ N(m0, Λ_cat⁻¹)         m0 = (overall rate, 0, …, 0)
    θ_a ~ N(μ_c(a), Λ_arm⁻¹)
    r   ~ N(φ(x) · θ_a, σ²)

``Λ`` is diagonal: the intercept is shrunk less than the other coefficients (a nudge's own rate is
learned from every patient who saw it), interaction coefficients more at the nudge level (they are
mostly learned per category, where the data is).

The posterior of ``φ(x) · θ_a`` is Gaussian, so a Thompson draw per (patient, nudge) is one normal
variate with the closed-form mean and variance below; no θ has to be sampled.
The model keeps only sufficient statistics (ΦᵀΦ, Φᵀr, counts per nudge), so retraining is adding rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization import model_io
from nudge_engine.personalization.context import INTERCEPT


@dataclass(frozen=True, slots=True)
class BanditParams:
    # Defaults tuned in the simulator (benchmarks/bench_simulator.py); see the module docstring.
    arm_precision: float = 300.0  # how strongly a nudge shrinks to its category model
    category_precision: float = 100.0  # how strongly a category shrinks to the overall rate
    noise_var: float | None = None  # σ²; None: p(1-p) of the overall rate, within [0.05, 0.25]
    exploration: float = 0.25  # multiplies the posterior standard deviation of the draws
    intercept_scale: float = 0.1  # the intercept's prior precision, relative to the other coefficients
    interaction_scale: float = 10.0  # interaction coefficients' prior precision at the nudge level, relative

    def describe(self) -> str:
        """What the version hashes: models stored before the scales existed keep their version."""
        legacy = (f"BanditParams(arm_precision={self.arm_precision!r}, "
                  f"category_precision={self.category_precision!r}, "
                  f"noise_var={self.noise_var!r}, exploration={self.exploration!r})")
        if (self.intercept_scale, self.interaction_scale) == LEGACY_SCALES:
            return legacy
        return f"{legacy[:-1]}, intercept_scale={self.intercept_scale!r}, interaction_scale={self.interaction_scale!r})"


# What models stored before per-coefficient scales and interactions were introduced used.
LEGACY_SCALES = (1.0, 1.0)
INTERACTION = "*"


def interaction_name(a: str, b: str) -> str:
    return f"{a}{INTERACTION}{b}"


class LinearThompson:
    """A trained (or empty) model over a fixed list of context features, their interactions, and nudges."""

    def __init__(
        self,
        feature_names: Sequence[str],
        arm_ids: Sequence[str],
        arm_category: npt.NDArray[np.integer],
        *,
        params: BanditParams | None = None,
        interactions: Sequence[tuple[str, str]] = (),
        xtx: npt.NDArray[np.float64] | None = None,
        xty: npt.NDArray[np.float64] | None = None,
        counts: npt.NDArray[np.float64] | None = None,
        reward_sum: npt.NDArray[np.float64] | None = None,
        trained_at: str = "1970-01-01T00:00:00Z",
    ) -> None:
        if INTERCEPT not in feature_names:
            raise InvalidInput(f"bandit: field 'feature_names': needs '{INTERCEPT}'")
        self.feature_names = tuple(feature_names)
        col = {n: j for j, n in enumerate(self.feature_names)}
        unknown = [f"{a}, {b}" for a, b in interactions if a not in col or b not in col]
        if unknown:
            raise InvalidInput(f"bandit: field 'interactions': not context features: {'; '.join(unknown)}")
        self.interactions = tuple((str(a), str(b)) for a, b in interactions)
        self._pair_cols = np.array([[col[a], col[b]] for a, b in self.interactions], dtype=np.intp).reshape(-1, 2)
        self.model_names = self.feature_names + tuple(interaction_name(a, b) for a, b in self.interactions)
        self.arm_ids = tuple(arm_ids)
        self.arm_category = np.asarray(arm_category, dtype=np.int64)
        self.params = params or BanditParams()
        a, d = len(self.arm_ids), len(self.model_names)
        self.xtx = np.zeros((a, d, d)) if xtx is None else xtx
        self.xty = np.zeros((a, d)) if xty is None else xty
        if self.xtx.shape != (a, d, d) or self.xty.shape != (a, d):
            raise InvalidInput(f"bandit: field 'xtx': shape {self.xtx.shape}, expected {(a, d, d)}")
        self.counts = np.zeros(a) if counts is None else counts
        self.reward_sum = np.zeros(a) if reward_sum is None else reward_sum
        self.trained_at = trained_at
        self.mean, self.cov = self._posterior()
        self.version = self._version()

    def expand(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Context rows (columns ``feature_names``) with the interaction products appended."""
        if not self.interactions:
            return x
        return np.hstack([x, x[:, self._pair_cols[:, 0]] * x[:, self._pair_cols[:, 1]]])

    # ------------------------------------------------------------------ posterior
    @property
    def overall_rate(self) -> float:
        return float((self.reward_sum.sum() + 1.0) / (self.counts.sum() + 5.0))

    @property
    def noise_var(self) -> float:
        if self.params.noise_var is not None:
            return self.params.noise_var
        p = self.overall_rate
        return float(np.clip(p * (1.0 - p), 0.05, 0.25))

    def _precisions(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Diagonal prior precisions (category level, nudge level), one per model coefficient."""
        p, d = self.params, len(self.model_names)
        scale = np.ones(d)
        scale[self.feature_names.index(INTERCEPT)] = p.intercept_scale
        arm_scale = scale.copy()
        arm_scale[len(self.feature_names):] = p.interaction_scale
        return p.category_precision * scale, p.arm_precision * arm_scale

    def _posterior(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        a, d = len(self.arm_ids), len(self.model_names)
        s2 = self.noise_var
        m0 = np.zeros(d)
        m0[self.feature_names.index(INTERCEPT)] = self.overall_rate
        lam_c, lam_a = self._precisions()
        cat_mean: dict[int, npt.NDArray[np.float64]] = {}
        for c in np.unique(self.arm_category):
            arms = self.arm_category == c
            prec = np.diag(lam_c) + self.xtx[arms].sum(0) / s2
            cat_mean[int(c)] = np.linalg.solve(prec, lam_c * m0 + self.xty[arms].sum(0) / s2)
        prior = np.array([cat_mean[int(c)] for c in self.arm_category]).reshape(a, d)
        prec = np.diag(lam_a)[None] + self.xtx / s2
        cov = np.linalg.inv(prec)
        mean: npt.NDArray[np.float64] = np.einsum("ade,ae->ad", cov, lam_a[None] * prior + self.xty / s2)
        return mean, np.asarray(cov, dtype=np.float64)

    def _version(self) -> str:
        h = hashlib.sha256()
        h.update(repr((self.feature_names, self.arm_ids, self.arm_category.tolist())).encode()[:-1])
        h.update(f", {self.params.describe()})".encode())
        if self.interactions:
            h.update(repr(self.interactions).encode())
        for arr in (self.xtx, self.xty, self.counts, self.reward_sum):
            h.update(np.ascontiguousarray(arr).tobytes())
        stamp = self.trained_at.replace("-", "").replace(":", "")
        return f"lints-{h.hexdigest()[:10]}-{stamp}"

    # ------------------------------------------------------------------ prediction
    def predict(
        self, x: npt.NDArray[np.float64], arms: npt.NDArray[np.intp] | None = None, *, chunk: int = 2048
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Posterior mean and standard deviation of the reward of every (patient, arm); ``x`` is the context."""
        x = self.expand(x)
        mean_t, cov = (self.mean, self.cov) if arms is None else (self.mean[arms], self.cov[arms])
        n_a, d = mean_t.shape
        mean = x @ mean_t.T
        var = np.empty(mean.shape, dtype=np.float32)
        flat = cov.transpose(1, 0, 2).reshape(d, n_a * d).astype(np.float32)
        x32 = x.astype(np.float32)
        for lo in range(0, len(x), chunk):
            xc = x32[lo : lo + chunk]
            var[lo : lo + chunk] = np.matmul((xc @ flat).reshape(len(xc), n_a, d), xc[:, :, None])[..., 0]
        std = np.sqrt(np.maximum(var, 0.0)).astype(np.float64) * self.params.exploration
        return mean, std

    # ------------------------------------------------------------------ training
    def update(
        self,
        x: npt.NDArray[np.float64],
        actions: npt.NDArray[np.integer],
        rewards: npt.NDArray[np.floating],
        *,
        weights: npt.NDArray[np.floating] | None = None,
        now: datetime | None = None,
    ) -> LinearThompson:
        """A new model with the logged rows added. ``actions`` index ``arm_ids``; -1 rows are skipped."""
        keep = actions >= 0
        x, actions, rewards = self.expand(x[keep]), actions[keep].astype(np.int64), rewards[keep].astype(np.float64)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
        xtx, xty = self.xtx.copy(), self.xty.copy()
        counts, rsum = self.counts.copy(), self.reward_sum.copy()
        order = np.argsort(actions, kind="stable")
        bounds = np.searchsorted(actions[order], np.arange(len(self.arm_ids) + 1))
        for a in np.flatnonzero(np.diff(bounds)):
            idx = order[bounds[a] : bounds[a + 1]]
            xa, wa = x[idx], w[idx]
            xtx[a] += (xa * wa[:, None]).T @ xa
            xty[a] += (xa * (wa * rewards[idx])[:, None]).sum(0)
            counts[a] += wa.sum()
            rsum[a] += (wa * rewards[idx]).sum()
        stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return LinearThompson(
            self.feature_names, self.arm_ids, self.arm_category, params=self.params, interactions=self.interactions,
            xtx=xtx, xty=xty, counts=counts, reward_sum=rsum, trained_at=stamp,
        )

    def reindexed(self, arm_ids: Sequence[str], arm_category: npt.NDArray[np.integer]) -> LinearThompson:
        """The same evidence over another nudge list (a new catalog); new nudges start from the prior."""
        old = {a: i for i, a in enumerate(self.arm_ids)}
        n, d = len(arm_ids), len(self.model_names)
        xtx, xty, counts, rsum = np.zeros((n, d, d)), np.zeros((n, d)), np.zeros(n), np.zeros(n)
        for i, a in enumerate(arm_ids):
            j = old.get(a)
            if j is not None:
                xtx[i], xty[i], counts[i], rsum[i] = self.xtx[j], self.xty[j], self.counts[j], self.reward_sum[j]
        return LinearThompson(
            self.feature_names, arm_ids, arm_category, params=self.params, interactions=self.interactions,
            xtx=xtx, xty=xty, counts=counts, reward_sum=rsum, trained_at=self.trained_at,
        )

    # ------------------------------------------------------------------ storage
    def to_bytes(self) -> bytes:
        header = {
            "feature_names": list(self.feature_names), "arm_ids": list(self.arm_ids),
            "interactions": [list(p) for p in self.interactions],
            "params": {k: getattr(self.params, k) for k in BanditParams.__dataclass_fields__},
            "trained_at": self.trained_at, "version": self.version,
        }
        arrays = {"arm_category": self.arm_category, "xtx": self.xtx, "xty": self.xty,
                  "counts": self.counts, "reward_sum": self.reward_sum}
        return model_io.dump("linear_thompson", header, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> LinearThompson:
        h, a = model_io.load("linear_thompson", blob)
        # Models stored before the per-coefficient scales and interactions existed used scales of 1.
        legacy = dict(zip(("intercept_scale", "interaction_scale"), LEGACY_SCALES, strict=True))
        model = cls(
            h["feature_names"], h["arm_ids"], a["arm_category"], params=BanditParams(**{**legacy, **h["params"]}),
            interactions=[(str(p[0]), str(p[1])) for p in h.get("interactions", [])],
            xtx=a["xtx"], xty=a["xty"], counts=a["counts"], reward_sum=a["reward_sum"], trained_at=h["trained_at"],
        )
        if model.version != h["version"]:
            raise InvalidInput(f"model: field 'version': stored {h['version']}, content gives {model.version}")
        return model
