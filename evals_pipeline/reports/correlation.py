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


# Online signals per trace: thumbs-up rate (1 up, 0 down, null unrated) and whether each
# other signal occurred. Shared by the per-trace and the per-cell queries.
TRACE_SIGNALS_CTE = """
f AS (
    SELECT trace_id,
           CASE WHEN bool_or(signal = 'thumbs_up') THEN 1.0 WHEN bool_or(signal = 'thumbs_down') THEN 0.0 END AS thumbs_up_rate,
           bool_or(signal = 'task_completed')::DOUBLE AS task_completed,
           bool_or(signal = 'escalation')::DOUBLE AS escalation,
           bool_or(signal = 'follow_up')::DOUBLE AS follow_up,
           bool_or(signal = 'session_continued')::DOUBLE AS session_continued
    FROM trace_feedback GROUP BY 1
)"""

# Per labelled production trace: each judge's verdict and the trace's online signals.
PER_TRACE_SQL = f"""
WITH {TRACE_SIGNALS_CTE}
SELECT v.judge, t.app_version, t.user_segment, (v.verdict = 'pass')::DOUBLE AS offline,
       f.thumbs_up_rate, coalesce(f.task_completed, 0) AS task_completed,
       coalesce(f.escalation, 0) AS escalation, coalesce(f.follow_up, 0) AS follow_up,
       coalesce(f.session_continued, 0) AS session_continued
FROM calibration_verdicts v JOIN traces t ON t.trace_id = v.subject_id LEFT JOIN f ON f.trace_id = v.subject_id
WHERE v.verdict IS NOT NULL AND t.partition_date >= $start AND t.partition_date < $end
"""

# Per (app version x user segment): online signals over all of the cell's traffic.
CELL_ONLINE_SQL = f"""
WITH {TRACE_SIGNALS_CTE}
SELECT t.app_version, t.user_segment, avg(f.thumbs_up_rate) AS thumbs_up_rate,
       avg(coalesce(f.task_completed, 0)) AS task_completed, avg(coalesce(f.escalation, 0)) AS escalation,
       avg(coalesce(f.follow_up, 0)) AS follow_up, avg(coalesce(f.session_continued, 0)) AS session_continued
FROM traces t LEFT JOIN f USING (trace_id)
WHERE t.partition_date >= $start AND t.partition_date < $end
GROUP BY ALL
"""
