"""Population stability index: how far a distribution moved from a reference one.

``PSI = Σ (cur_b - ref_b) · ln(cur_b / ref_b)`` over bins ``b`` cut at the reference's quantiles
(so each reference bin holds about the same share). Rule of thumb: under 0.1 stable, 0.1-0.25 a
moderate shift worth a look, over 0.25 a major shift. Empty bins get a small floor share so the
logarithm stays finite. Repeated values (many zeros) merge quantile edges; the bins are then fewer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FLOOR = 1e-4


def bin_edges(reference: npt.NDArray[np.float64], bins: int = 10) -> npt.NDArray[np.float64]:
    """Inner cut points at the reference's quantiles (unique, so fewer when values repeat)."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if len(ref) == 0:
        return np.zeros(0)
    qs = np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def shares(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1).astype(np.float64)
    total = counts.sum()
    out: npt.NDArray[np.float64] = counts / total if total else counts
    return out


def psi(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64], *, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` (0.0 when either is empty)."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if len(ref) == 0 or len(cur) == 0:
        return 0.0
    edges = bin_edges(ref, bins)
    p = np.maximum(shares(ref, edges), FLOOR)
    q = np.maximum(shares(cur, edges), FLOOR)
    return float(((q - p) * np.log(q / p)).sum())
