"""Off-policy evaluation: what would a candidate policy have achieved on logged decisions?

Estimators, for logged rows ``(x_i, a_i, r_i, μ_i)`` (μ = logged propensity) and a target policy π:

* IPS:   mean(w_i r_i),  w_i = π(a_i|x_i) / μ_i
* SNIPS: Σ w_i r_i / Σ w_i
* DR:    mean(Σ_a π(a|x_i) q(x_i,a) + w_i (r_i − q(x_i,a_i))), q a reward model fitted by cross-fitting
* WDM:   mean(Σ_a π(a|x_i) q̃(x_i,a)), the direct method with a reward model q̃ fitted by weighted
         regression, each row weighted by max(w_i (w_i − 1), 0): the weights of the "more robust doubly
         robust" (MRDR) model for a deterministic target (Farajtabar et al., 2018)

Why WDM: a logging bandit stops playing a nudge for a patient type after a few bad outcomes, so the
rows it leaves of that nudge there are the unlucky ones (the negative bias of adaptively collected
means). An unweighted reward model inherits that bias exactly where a candidate disagrees with the
logger, and underestimates the candidate. The MRDR weights put the fit on the rows where the
candidate acts and the logger rarely did (exploration rows, whose outcomes did not decide that they
were logged), and the linear model pools them across patients, so the estimate avoids both that
bias and the variance of putting weights in the thousands on single rewards. It is model-based: it
is only as good as the reward model's form, and it is poor for spread-out targets (a uniform one),
where few rows carry weight and IPS has support anyway.

Intervals are bootstrap percentiles over rows (WDM: its reward model refitted on Poisson-weighted
resamples, fewer of them, each with its own fold assignment). Overlap diagnostics: the effective
sample size of the weights, the smallest logged propensity, the largest weight, and the mean weight
(≈ 1 when the logging policy covered every action the target takes; well below 1 means missing
support). They come with the estimator to read: DR with adequate overlap, WDM without.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput
from nudge_engine.personalization.bandit import BanditParams, LinearThompson
from nudge_engine.personalization.context import context_matrix, context_names
from nudge_engine.personalization.ranking import RankingInput, RankingPolicy


@dataclass(frozen=True, slots=True)
class LoggedDecisions:
    """Logged decisions as arrays: the boundary between the database and the evaluation.

    Row ``i`` is one served decision: the patient's behaviour features and segment membership at
    decision time, the permitted and caution sets over ``nudge_ids``, the served nudge, its reward
    (e.g. completed within 48 h) and the propensity logged with it.
    """

    behaviour: npt.NDArray[np.float64]  # (n, behaviour features)
    membership: npt.NDArray[np.bool_]  # (n, segments)
    segment_ids: tuple[str, ...]
    nudge_ids: tuple[str, ...]
    nudge_category: npt.NDArray[np.int8]
    priority: npt.NDArray[np.float64]
    permitted: npt.NDArray[np.bool_]  # (n, nudges)
    caution: npt.NDArray[np.bool_]
    action: npt.NDArray[np.intp]
    reward: npt.NDArray[np.float64]
    propensity: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.action)

    def validate(self) -> None:
        n = len(self)
        for name in ("behaviour", "membership", "permitted", "caution", "reward", "propensity"):
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"LoggedDecisions: field '{name}': length differs from 'action'")
        if n and not (self.permitted[np.arange(n), self.action]).all():
            raise InvalidInput("LoggedDecisions: field 'action': an action outside its permitted set")
        if n and not ((self.propensity > 0) & (self.propensity <= 1)).all():
            raise InvalidInput("LoggedDecisions: field 'propensity': must be in (0, 1]")

    def subset(self, rows: npt.NDArray[np.intp]) -> LoggedDecisions:
        return LoggedDecisions(
            self.behaviour[rows], self.membership[rows], self.segment_ids, self.nudge_ids, self.nudge_category,
            self.priority, self.permitted[rows], self.caution[rows], self.action[rows], self.reward[rows],
            self.propensity[rows],
        )

    def ranking_input(self) -> RankingInput:
        return RankingInput(
            behaviour=self.behaviour, membership=self.membership, segment_ids=self.segment_ids,
            nudge_ids=self.nudge_ids, nudge_category=self.nudge_category, priority=self.priority,
            permitted=self.permitted, caution=self.caution,
        )

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, behaviour=self.behaviour, membership=self.membership, segment_ids=np.array(self.segment_ids),
            nudge_ids=np.array(self.nudge_ids), nudge_category=self.nudge_category, priority=self.priority,
            permitted=self.permitted, caution=self.caution, action=self.action, reward=self.reward,
            propensity=self.propensity,
        )

    @classmethod
    def load(cls, path: Path) -> LoggedDecisions:
        try:
            with np.load(path, allow_pickle=False) as f:
                a: dict[str, Any] = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path}: cannot read logged decisions: {exc}") from None
        try:
            logged = cls(
                a["behaviour"], a["membership"], tuple(str(s) for s in a["segment_ids"]),
                tuple(str(s) for s in a["nudge_ids"]), a["nudge_category"], a["priority"], a["permitted"],
                a["caution"], a["action"].astype(np.intp), a["reward"].astype(np.float64),
                a["propensity"].astype(np.float64),
            )
        except KeyError as exc:
            raise InvalidInput(f"{path}: field '{exc.args[0]}': missing") from None
        logged.validate()
        return logged


@dataclass(frozen=True, slots=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Overlap:
    n: int
    ess: float  # effective sample size of the importance weights
    min_propensity: float  # smallest logged propensity where the target acts
    max_weight: float
    mean_weight: float
    warnings: tuple[str, ...]
    recommended: str = "dr"  # the estimator to read, given these diagnostics
    reason: str = ""


def overlap(
    weights: npt.NDArray[np.float64],
    propensity: npt.NDArray[np.float64],
    target: npt.NDArray[np.float64],
    *,
    min_ess: float = 500.0,
    max_share: float = 0.05,
    concentration: float | None = None,
    min_concentration: float = 0.5,
) -> Overlap:
    """Overlap diagnostics of importance weights, with a warning for each sign of thin support.

    ``concentration`` is the target's mean Σ_a π(a|x)² (1 for a deterministic policy, 1/|permitted| for a
    uniform one), known when WDM was computed: WDM is read under thin support only for a (near-)deterministic
    target, the case its MRDR weights are derived for; otherwise DR stays the estimator to read.
    """
    n = len(weights)
    ess = float(weights.sum() ** 2 / max((weights**2).sum(), 1e-300))
    acting = target > 0
    min_p = float(propensity[acting].min()) if acting.any() else float("nan")
    warnings: list[str] = []
    if ess < min_ess:
        warnings.append(f"low overlap: effective sample size {ess:.0f} of {n} rows (< {min_ess:.0f})")
    share = float(weights.max(initial=0.0) / max(weights.sum(), 1e-300))
    if share > max_share:
        top = int(weights.argmax())
        warnings.append(f"one row carries {share:.0%} of the weight (logged propensity {propensity[top]:.2g})")
    mean_w = float(weights.mean()) if n else float("nan")
    if n and abs(mean_w - 1.0) > 0.1:
        warnings.append(f"mean weight {mean_w:.2f} is not ≈1: the logging policy may not cover the target's actions")
    if ess >= min_ess:
        recommended, reason = "dr", f"effective sample {ess:.0f} ≥ {min_ess:.0f}: importance weighting has support"
    elif concentration is None or concentration < min_concentration:
        recommended, reason = "dr", (f"effective sample {ess:.0f} < {min_ess:.0f}, and the target is not "
                                     "(near-)deterministic, which WDM needs: no estimate here is reliable")
    else:
        recommended, reason = "wdm", (f"effective sample {ess:.0f} < {min_ess:.0f}: importance weights rest on a few "
                                      "rewards; WDM pools them through a weighted reward model (model-based)")
    return Overlap(n, ess, min_p, float(weights.max(initial=0.0)), mean_w, tuple(warnings), recommended, reason)


def mrdr_weights(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Regression weights of the MRDR reward model for a (near-)deterministic target: max(w (w − 1), 0)."""
    out: npt.NDArray[np.float64] = np.maximum(w * (w - 1.0), 0.0)
    return out


def reward_model(
    logged: LoggedDecisions,
    *,
    folds: int = 2,
    seed: int = 0,
    weights: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Cross-fitted predictions q(x_i, a) for every row and nudge (a ridge model per nudge), rows weighted."""
    return _RewardFit(logged, folds=folds, seed=seed).predict(weights)


class _RewardFit:
    """The cross-fitted reward model, refitted cheaply under other row weights (for bootstrap replicates)."""

    def __init__(self, logged: LoggedDecisions, *, folds: int, seed: int) -> None:
        self.logged = logged
        self.names = context_names(logged.segment_ids)
        self.x = context_matrix(self.names, behaviour=logged.behaviour, membership=logged.membership,
                                segment_ids=logged.segment_ids)
        fold = np.random.default_rng(seed).integers(0, folds, len(logged))
        self.folds = [fold == k for k in range(folds)]

    def predict(self, weights: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
        lg = self.logged
        out = np.zeros(lg.permitted.shape)
        for test in self.folds:
            train = ~test
            model = LinearThompson(self.names, lg.nudge_ids, lg.nudge_category, params=BanditParams(exploration=0.0))
            model = model.update(self.x[train], lg.action[train], lg.reward[train],
                                 weights=None if weights is None else weights[train], now=None)
            out[test] = model.expand(self.x[test]) @ model.mean.T
        return np.clip(out, 0.0, 1.0)


class TargetPolicy(Protocol):
    """The policy being evaluated: its chance of the logged action, and its expectation of a per-action value."""

    def top_probability(self, inp: RankingInput, actions: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]: ...

    def expected_value(
        self, inp: RankingInput, values: npt.NDArray[np.float64], *, rng: np.random.Generator, n_samples: int = 64
    ) -> npt.NDArray[np.float64]: ...


def action_probabilities(
    target: TargetPolicy, inp: RankingInput, *, rng: np.random.Generator, n_samples: int = 64
) -> npt.NDArray[np.float64] | None:
    """(rows × nudges) π(a|x) of a ranking policy (:meth:`RankingPolicy.action_probabilities`); None for
    other targets."""
    if not isinstance(target, RankingPolicy):
        return None
    return target.action_probabilities(inp, rng=rng, n_samples=n_samples)


def estimate(
    logged: LoggedDecisions,
    target: TargetPolicy,
    *,
    q: npt.NDArray[np.float64] | None = None,
    n_boot: int = 400,
    n_refit: int = 20,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Estimate], Overlap]:
    """IPS, SNIPS, DR and (for ranking policies) WDM estimates of ``target``'s value, with bootstrap intervals.

    WDM's interval comes from ``n_refit`` refits of its reward model on Poisson-weighted resamples.
    """
    n = len(logged)
    if n == 0:
        raise InvalidInput("LoggedDecisions: field 'action': no rows to evaluate")
    rows = np.arange(n)
    inp = logged.ranking_input()
    pi_a = target.top_probability(inp, logged.action)
    w = pi_a / logged.propensity
    r = logged.reward
    q = reward_model(logged, seed=seed) if q is None else q
    pi = action_probabilities(target, inp, rng=np.random.default_rng(seed))  # None: only expected values known
    dm = target.expected_value(inp, q, rng=np.random.default_rng(seed)) if pi is None else (pi * q).sum(axis=1)
    dr_terms = dm + w * (r - q[rows, logged.action])

    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    wr = w * r
    ips_b = wr[idx].mean(axis=1)
    snips_b = wr[idx].sum(axis=1) / np.maximum(w[idx].sum(axis=1), 1e-300)
    dr_b = dr_terms[idx].mean(axis=1)
    estimates = {
        "ips": Estimate("ips", float(wr.mean()), *percentile_interval(ips_b, level)),
        "snips": Estimate("snips", float(wr.sum() / max(w.sum(), 1e-300)), *percentile_interval(snips_b, level)),
        "dr": Estimate("dr", float(dr_terms.mean()), *percentile_interval(dr_b, level)),
    }
    if pi is None:
        return estimates, overlap(w, logged.propensity, pi_a)
    estimates["wdm"] = _weighted_dm(logged, pi, mrdr_weights(w), n_refit=n_refit, level=level, seed=seed)
    return estimates, overlap(w, logged.propensity, pi_a, concentration=float((pi**2).sum(axis=1).mean()))


def _weighted_dm(
    logged: LoggedDecisions, pi: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], *, n_refit: int,
    level: float, seed: int, folds: int = 5, splits: int = 3,
) -> Estimate:
    """The direct method on a reward model fitted with ``weights``, cross-fitted over ``folds`` and averaged
    over ``splits`` random fold assignments (a single split moves the estimate by several percent: the fit
    rests on the few heavily weighted rows). The interval refits on Poisson resamples, one split each."""
    value = float(np.mean([
        (pi * _RewardFit(logged, folds=folds, seed=seed + k).predict(weights)).sum(axis=1).mean() for k in range(splits)
    ]))
    rng = np.random.default_rng([seed, 1])
    reps = []
    for k in range(n_refit):
        b = rng.poisson(1.0, len(logged)).astype(np.float64)
        q = _RewardFit(logged, folds=folds, seed=seed + splits + k).predict(weights * b)
        reps.append(float(b @ (pi * q).sum(axis=1) / max(b.sum(), 1.0)))
    low, high = percentile_interval(np.asarray(reps), level) if reps else (value, value)
    return Estimate("wdm", value, low, high)


def percentile_interval(samples: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap (or refit) replicates."""
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    return float(np.quantile(samples, lo_q)), float(np.quantile(samples, hi_q))
