"""Offline-online correlation: Pearson and Spearman with bootstrap confidence intervals.

Used per (app version x segment) cell and per trace: does the offline score still predict
what users do online? Point estimates come from scipy; intervals from a percentile
bootstrap over the pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from evals_pipeline.judging.rubrics import FAILURE_MODE_PREFIX
from evals_pipeline.records import (
    CALIBRATION_VERDICTS,
    CORRECTED_PASS_RATES,
    ONLINE_METRICS,
    PREFERENCE_RATINGS,
    TRACE_FEEDBACK,
    TRACES,
)


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


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of `x` with the same row of `y` (NaN where a row is constant)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sx, sy = np.sqrt((xc * xc).sum(axis=1)), np.sqrt((yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / (sx * sy)
    # a row constant up to rounding has no correlation (as `_safe` says for the point)
    flat = (x.std(axis=1) == 0) | (y.std(axis=1) == 0)
    return np.where(flat, np.nan, np.clip(r, -1.0, 1.0))


def correlate(
    x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0, batch: int = 250
) -> Correlation:
    """Pearson and Spearman with percentile-bootstrap 95% intervals over the pairs. The
    resamples are drawn as one index matrix per batch and their statistics computed row-wise
    (ranks with scipy's `rankdata`, ties averaged as `spearmanr` does)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    rng = np.random.default_rng(seed)
    pb, sb = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    if len(x) >= 3:
        for start in range(0, n_boot, batch):
            k = min(batch, n_boot - start)
            idx = rng.integers(len(x), size=(k, len(x)))
            bx, by = x[idx], y[idx]
            pb[start : start + k] = _rowwise_pearson(bx, by)
            sb[start : start + k] = _rowwise_pearson(
                stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1)
            )

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
TRACE_SIGNALS_CTE = f"""
f AS (
    SELECT trace_id,
           CASE WHEN bool_or(signal = 'thumbs_up') THEN 1.0 WHEN bool_or(signal = 'thumbs_down') THEN 0.0 END AS thumbs_up_rate,
           bool_or(signal = 'task_completed')::DOUBLE AS task_completed,
           bool_or(signal = 'escalation')::DOUBLE AS escalation,
           bool_or(signal = 'follow_up')::DOUBLE AS follow_up,
           bool_or(signal = 'session_continued')::DOUBLE AS session_continued
    FROM {TRACE_FEEDBACK} GROUP BY 1
)"""

# Per labelled production trace: each judge's verdict and the trace's online signals. A
# judge's verdicts of its overall pass/fail prompt only: not the per-failure-mode rubrics, and
# of a rubric's versions the one that judged the most outputs (the deployed prompt judges
# every labelled output; a prompt measured beside it, with or without few-shot examples, only
# the dev split).
DEPLOYED_CTE = f"""deployed AS (SELECT judge, rubric, rubric_version FROM {CALIBRATION_VERDICTS}
             WHERE rubric NOT LIKE '{FAILURE_MODE_PREFIX}%' GROUP BY judge, rubric, rubric_version
             QUALIFY row_number() OVER (PARTITION BY judge ORDER BY count(*) DESC, rubric, rubric_version) = 1)"""

PER_TRACE_SQL = f"""
WITH {TRACE_SIGNALS_CTE},
{DEPLOYED_CTE}
SELECT v.judge, t.app_version, t.user_segment, (v.verdict = 'pass')::DOUBLE AS offline,
       f.thumbs_up_rate, coalesce(f.task_completed, 0) AS task_completed,
       coalesce(f.escalation, 0) AS escalation, coalesce(f.follow_up, 0) AS follow_up,
       coalesce(f.session_continued, 0) AS session_continued
FROM {CALIBRATION_VERDICTS} v JOIN deployed USING (judge, rubric, rubric_version)
JOIN {TRACES} t ON t.trace_id = v.subject_id LEFT JOIN f ON f.trace_id = v.subject_id
WHERE v.verdict IS NOT NULL AND t.partition_date >= $start AND t.partition_date < $end
-- a fixed row order: the bootstrap resamples by position (same data, same intervals)
ORDER BY v.judge, v.subject_id
"""

# Per (app version x user segment): online signals over all of the cell's traffic.
CELL_ONLINE_SQL = f"""
WITH {TRACE_SIGNALS_CTE}
SELECT t.app_version, t.user_segment, avg(f.thumbs_up_rate) AS thumbs_up_rate,
       avg(coalesce(f.task_completed, 0)) AS task_completed, avg(coalesce(f.escalation, 0)) AS escalation,
       avg(coalesce(f.follow_up, 0)) AS follow_up, avg(coalesce(f.session_continued, 0)) AS session_continued
FROM {TRACES} t LEFT JOIN f USING (trace_id)
WHERE t.partition_date >= $start AND t.partition_date < $end
GROUP BY ALL
ORDER BY ALL
"""


SIGNALS = ("thumbs_up_rate", "task_completed", "escalation", "follow_up", "session_continued")
# Seed 002: below this Spearman the offline scores no longer predict what users do.
ALARM_BELOW = 0.6
# A cell's offline score needs at least this many judged traces.
MIN_CELL_TRACES = 5


def correlation_rows(
    per_trace: pd.DataFrame,
    online_cells: pd.DataFrame,
    trust: dict[str, bool | None],
    quarter: object,
) -> list[tuple[object, ...]]:
    """`online_offline_correlation` rows: per judge and signal, at the cell level (app version
    x user segment) and the trace level. A cell's offline score comes from its judged
    (labelled) traces; its online signals from all of the cell's traffic that quarter, which
    is far less noisy. `per_trace`: judge, app_version, user_segment, offline, signals;
    `online_cells`: signals indexed by (app_version, user_segment)."""
    rows: list[tuple[object, ...]] = []
    for judge, g in per_trace.groupby("judge"):
        cells = g.groupby(["app_version", "user_segment"]).agg(
            offline=("offline", "mean"), n=("offline", "size")
        )
        cells = cells[cells["n"] >= MIN_CELL_TRACES].join(online_cells, how="inner")
        for signal in SIGNALS:
            for level, frame, n_boot in (("cell", cells, 500), ("trace", g, 200)):
                c = correlate(frame["offline"].to_numpy(), frame[signal].to_numpy(), n_boot=n_boot)
                rows.append(
                    (
                        quarter,
                        judge,
                        trust.get(judge),
                        level,
                        signal,
                        c.n,
                        c.pearson,
                        c.pearson_low,
                        c.pearson_high,
                        c.spearman,
                        c.spearman_low,
                        c.spearman_high,
                    )
                )
    return rows


def below_alarm(spearman: float, lower_is_better: bool = False) -> bool:
    """The offline-online alarm (seed 002): the offline score no longer predicts the online
    metric when Spearman is below ALARM_BELOW, or undefined (NaN). For a metric where lower
    is better (escalations), the correlation expected is negative: its sign is turned."""
    oriented = -spearman if lower_is_better else spearman
    return not (oriented >= ALARM_BELOW)


def correlation_alarm(frame: pd.DataFrame) -> tuple[bool, list[str], int]:
    """The alarm on the trusted judges' cell-level Spearman with the thumbs-up rate: (passed,
    judges below ALARM_BELOW, trusted judges measured). No trusted judge is a failure too."""
    main = frame[(frame["level"] == "cell") & (frame["signal"] == "thumbs_up_rate")]
    trusted = main[main["trusted"].astype(bool)]
    low = [j for j, r in zip(trusted["judge"], trusted["spearman"], strict=True) if below_alarm(r)]
    return (not trusted.empty and not low, low, len(trusted))


# Offline scores per system (segment 'all') or cell from every source the warehouse has:
# imported offline metrics (n-weighted mean over dates), Bradley-Terry ratings, and
# corrected pass rates. Online metrics the same way, with the dates they span.
OFFLINE_SCORES_SQL = f"""
SELECT 'imported:' || metric AS offline, system, segment,
       sum(value * coalesce(n, 1)) / sum(coalesce(n, 1)) AS score
FROM {ONLINE_METRICS} WHERE kind = 'offline' GROUP BY ALL
UNION ALL
SELECT 'bt:' || evidence, system, segment, rating FROM {PREFERENCE_RATINGS}
UNION ALL
SELECT 'pass_rate:' || judge || '/' || rubric, app_version, 'all', corrected_pass_rate
FROM {CORRECTED_PASS_RATES} WHERE corrected_pass_rate IS NOT NULL
ORDER BY ALL
"""

ONLINE_SCORES_SQL = f"""
SELECT metric, system, segment, sum(value * coalesce(n, 1)) / sum(coalesce(n, 1)) AS value,
       min(date) AS first_date, max(date) AS last_date
FROM {ONLINE_METRICS} WHERE kind = 'online' GROUP BY ALL ORDER BY ALL
"""


def evidence_correlation_rows(
    offline: pd.DataFrame, online: pd.DataFrame, lower_is_better: set[str], n_boot: int = 1000
) -> list[tuple[object, ...]]:
    """`evidence_correlation` rows: every offline score (offline, system, segment, score)
    against every online metric (metric, system, segment, value, first_date, last_date), at
    the system level (segment 'all') and the cell level (system x segment). The alarm is
    null with fewer than three systems or cells (no rank correlation to speak of)."""
    rows: list[tuple[object, ...]] = []
    for (name, metric), _ in (
        offline[["offline"]]
        .drop_duplicates()
        .merge(online[["metric"]].drop_duplicates(), how="cross")
        .groupby(["offline", "metric"], sort=True)
    ):
        pairs = offline[offline["offline"] == name].merge(
            online[online["metric"] == metric], on=["system", "segment"]
        )
        for level, part in (
            ("system", pairs[pairs["segment"] == "all"]),
            ("cell", pairs[pairs["segment"] != "all"]),
        ):
            if part.empty:
                continue
            c = correlate(part["score"].to_numpy(), part["value"].to_numpy(), n_boot=n_boot)
            alarm = below_alarm(c.spearman, metric in lower_is_better) if c.n >= 3 else None
            rows.append(
                (
                    name,
                    metric,
                    level,
                    c.n,
                    part["first_date"].min(),
                    part["last_date"].max(),
                    c.pearson,
                    c.pearson_low,
                    c.pearson_high,
                    c.spearman,
                    c.spearman_low,
                    c.spearman_high,
                    alarm,
                )
            )
    return rows


# Per month of the traces' days (up to the window's end): the thumbs-up rate of all traffic.
# Runs where the traffic lives (reports/online.py): DuckDB, or Spark on the lake.
ONLINE_MONTHLY_SQL = f"""
WITH {TRACE_SIGNALS_CTE}
SELECT CAST(date_trunc('month', t.partition_date) AS DATE) AS month, avg(f.thumbs_up_rate) AS online,
       count(f.thumbs_up_rate) AS online_n
FROM {TRACES} t JOIN f USING (trace_id) WHERE t.partition_date < $end GROUP BY 1
"""

# Per month: the trusted judges' pass rate on the labelled production traces, beside the
# traffic's thumbs-up rate (`ONLINE_MONTHLY_SQL`'s rows, registered as _online_monthly).
MONTHLY_SQL = f"""
WITH {DEPLOYED_CTE},
off AS (
    SELECT date_trunc('month', t.partition_date)::DATE AS month, avg((v.verdict = 'pass')::DOUBLE) AS offline,
           count(*) AS offline_n
    FROM {CALIBRATION_VERDICTS} v JOIN deployed USING (judge, rubric, rubric_version)
    JOIN {TRACES} t ON t.trace_id = v.subject_id
    WHERE v.verdict IS NOT NULL AND list_contains($judges, v.judge) AND t.partition_date < $end
    GROUP BY 1
), onl AS (SELECT month::DATE AS month, online, online_n FROM _online_monthly)
SELECT month, offline, offline_n, online, online_n
FROM off JOIN onl USING (month) ORDER BY month
"""


def offline_outruns_online(
    monthly: pd.DataFrame, months: int, min_rise: float, max_online_change: float
) -> tuple[bool, str]:
    """(quiet, why): the alarm of seed 003 on the last `months` months of `monthly` (month,
    offline, online): offline pass rate rising every month and by at least `min_rise` in all,
    while the online rate moved by no more than `max_online_change`."""
    last = monthly.tail(months)
    if len(last) < months:
        return True, f"{len(last)} months with both scores (the alarm needs {months})"
    off, on = last["offline"].to_numpy(), last["online"].to_numpy()
    rise, moved = float(off[-1] - off[0]), float(on[-1] - on[0])
    span = f"{last['month'].iloc[0]} .. {last['month'].iloc[-1]}"
    if bool(np.all(np.diff(off) > 0)) and rise >= min_rise and abs(moved) <= max_online_change:
        return False, (
            f"offline pass rate rose {rise:+.3f} over {span} while the thumbs-up rate moved "
            f"{moved:+.3f}: the offline scores no longer track users (overfit judges or eval set)"
        )
    return True, f"{span}: offline {rise:+.3f}, online {moved:+.3f}"
