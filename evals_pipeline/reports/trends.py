"""Trends and the "since last run" diff, read from the history tables (records/history.py).

Each function returns a small frame the HTML report shows as it is (and a test reads): the
ensemble's pass rate per version and category over the runs' quarters, the judges' test-split
TPR/TNR per rubric version, the correlation per quarter, and what changed since the run before.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from evals_pipeline.records import (
    JUDGE_CALIBRATION_HISTORY,
    ONLINE_OFFLINE_CORRELATION_HISTORY,
    RELEASE_GATES_HISTORY,
    SEGMENT_REPORT_HISTORY,
)

# The newest rows per partition (a quarter re-run replaces what the report shows for it).
PASS_RATE_TREND_SQL = f"""
SELECT partition, app_version, category, score, ci_low, ci_high, n
FROM {SEGMENT_REPORT_HISTORY}
WHERE scorer = 'ensemble' AND level IN ('overall', 'category')
QUALIFY recorded_at = max(recorded_at) OVER (PARTITION BY partition)
ORDER BY partition, app_version, level DESC, category
"""

JUDGE_TREND_SQL = f"""
SELECT judge, rubric, rubric_version, min(recorded_at)::DATE AS first_measured,
       arg_max(n, recorded_at) AS n, arg_max(tpr, recorded_at) AS tpr, arg_max(tnr, recorded_at) AS tnr,
       arg_max(kappa, recorded_at) AS kappa, arg_max(trusted, recorded_at) AS trusted
FROM {JUDGE_CALIBRATION_HISTORY} WHERE split = 'test' AND category = 'all'
GROUP BY ALL ORDER BY judge, first_measured, rubric_version
"""

CORRELATION_TREND_SQL = f"""
SELECT quarter, judge, arg_max(trusted, recorded_at) AS trusted, arg_max(n, recorded_at) AS n,
       arg_max(spearman, recorded_at) AS spearman, arg_max(spearman_low, recorded_at) AS spearman_low,
       arg_max(spearman_high, recorded_at) AS spearman_high
FROM {ONLINE_OFFLINE_CORRELATION_HISTORY} WHERE level = 'cell' AND signal = 'thumbs_up_rate'
GROUP BY ALL ORDER BY quarter, judge
"""


def pass_rate_trend(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Pass rate per version and category ('all' = overall) as columns per quarter."""
    rows = conn.execute(PASS_RATE_TREND_SQL).df()
    if rows.empty:
        return rows
    return (
        rows.pivot_table(
            index=["app_version", "category"], columns="partition", values="score", aggfunc="first"
        )
        .reset_index()
        .rename_axis(columns=None)
    )


def judge_trend(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.execute(JUDGE_TREND_SQL).df()


def correlation_trend(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.execute(CORRELATION_TREND_SQL).df()


def _last_two_runs(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            f"SELECT run_id FROM {table} GROUP BY run_id ORDER BY max(recorded_at) DESC LIMIT 2"
        ).fetchall()
    ]


def since_last_run(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """What changed between the last two report runs: each gate's status, and the ensemble's
    overall pass rate per version (`what`, `before`, `now`, `changed`)."""
    runs = _last_two_runs(conn, RELEASE_GATES_HISTORY.name)
    if len(runs) < 2:
        return pd.DataFrame(columns=["what", "before", "now", "changed"])
    now, before = runs
    gates = conn.execute(
        f"""SELECT 'gate ' || gate AS what,
                  any_value(status) FILTER (WHERE run_id = ?) AS before,
                  any_value(status) FILTER (WHERE run_id = ?) AS now
           FROM {RELEASE_GATES_HISTORY} WHERE run_id IN (?, ?) GROUP BY gate ORDER BY gate""",
        [before, now, before, now],
    ).df()
    seg_runs = _last_two_runs(conn, SEGMENT_REPORT_HISTORY.name)
    rates = pd.DataFrame(columns=["what", "before", "now"])
    if len(seg_runs) == 2:
        rates = conn.execute(
            f"""SELECT 'pass rate ' || app_version AS what,
                      round(any_value(score) FILTER (WHERE run_id = ?), 3)::VARCHAR AS before,
                      round(any_value(score) FILTER (WHERE run_id = ?), 3)::VARCHAR AS now
               FROM {SEGMENT_REPORT_HISTORY}
               WHERE run_id IN (?, ?) AND scorer = 'ensemble' AND level = 'overall'
               GROUP BY app_version ORDER BY app_version""",
            [seg_runs[1], seg_runs[0], seg_runs[1], seg_runs[0]],
        ).df()
    out = pd.concat([gates, rates], ignore_index=True)
    out["changed"] = out["before"].fillna("") != out["now"].fillna("")
    return out
