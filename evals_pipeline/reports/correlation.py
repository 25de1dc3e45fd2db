"""Offline-online correlation: Pearson and Spearman with bootstrap confidence intervals.

Used per (app version x segment) cell and per trace: does the offline score still predict
what users do online? Point estimates come from scipy; intervals from a percentile
bootstrap over the pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Correlation:
    n: int
    pearson: float
    pearson_low: float
    pearson_high: float
    spearman: float
    spearman_low: float
    spearman_high: float


def _safe(fn, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(fn(x, y)[0])


def correlate(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Correlation:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    rng = np.random.default_rng(seed)
    pb, sb = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    for i in range(n_boot if len(x) >= 3 else 0):
        idx = rng.integers(len(x), size=len(x))
        pb[i] = _safe(stats.pearsonr, x[idx], y[idx])
        sb[i] = _safe(stats.spearmanr, x[idx], y[idx])

    def ci(v: np.ndarray) -> tuple[float, float]:
        v = v[~np.isnan(v)]
        return (
            (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
            if len(v)
            else (math.nan, math.nan)
        )

    return Correlation(
        len(x), _safe(stats.pearsonr, x, y), *ci(pb), _safe(stats.spearmanr, x, y), *ci(sb)
    )
