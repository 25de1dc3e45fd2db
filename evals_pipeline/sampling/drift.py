"""Drift alarms on incoming traffic (seed 003), checked with every daily sample.

- A stale golden set: no case entered the golden set for `max_days_without_new_cases` days
  of traffic (the quarterly rotation stopped, or found nothing new). Quiet before the first
  rotation: there is no golden set to go stale.
- The category mix moving beyond what the sampling floors assume: a category's share of the
  recent window's traffic against the baseline before it, flagged when it moved by more than
  `max_share_change` of its baseline share (a new category, or one that vanished, always
  moves), or when its recent daily traffic can no longer fill its floor (the sample then
  takes every row and the category's estimates rest on fewer cases than planned).
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import duckdb
import pandas as pd

from evals_pipeline.records import GOLDEN_POOLS, TRACES


def golden_staleness(conn: duckdb.DuckDBPyConnection, day: date, max_days: int) -> tuple[bool, str]:
    """(quiet, why) for the golden set as of traffic day `day`."""
    newest = conn.execute(f"SELECT max(entered_at) FROM {GOLDEN_POOLS}").fetchall()[0][0]
    if newest is None:
        return True, "no golden set yet (before the first rotation)"
    days = (day - newest).days
    if days > max_days:
        return False, (
            f"no new golden case for {days} days of traffic (newest entered {newest}, traffic up to "
            f"{day}; alarm after {max_days}): the golden set no longer reflects production. Run "
            "evals_quarterly (or turn on schedules.quarterly)."
        )
    return True, f"newest golden case entered {newest}, {days} days before {day}"


CATEGORY_MIX_SQL = f"""
WITH t AS (
    SELECT category, partition_date >= $recent_start AS recent, count(*) AS n
    FROM {TRACES} WHERE partition_date >= $baseline_start AND partition_date <= $day
    GROUP BY ALL
), w AS (
    SELECT category, coalesce(sum(n) FILTER (WHERE NOT recent), 0) AS baseline_n,
           coalesce(sum(n) FILTER (WHERE recent), 0) AS recent_n
    FROM t GROUP BY category
)
SELECT category, baseline_n, recent_n,
       baseline_n / nullif(sum(baseline_n) OVER (), 0) AS baseline_share,
       recent_n / nullif(sum(recent_n) OVER (), 0) AS recent_share
FROM w ORDER BY category
"""

HISTORY_SQL = f"""
SELECT count(DISTINCT partition_date) FILTER (WHERE partition_date < $recent_start),
       count(DISTINCT partition_date) FILTER (WHERE partition_date >= $recent_start)
FROM {TRACES} WHERE partition_date >= $baseline_start AND partition_date <= $day
"""


def category_mix_drift(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    window_days: int,
    baseline_days: int,
    max_change: float,
    floor: float,
    sample_size: int,
) -> tuple[pd.DataFrame, str]:
    """Per category: baseline and recent traffic share, relative change, whether the share
    moved beyond `max_change`, whether recent daily traffic fills the floor
    (ceil(floor x sample_size) rows a day); and a note when there is too little history
    (less than half of either window has traffic): then nothing is flagged."""
    recent_start = day - timedelta(days=window_days - 1)
    params = {
        "day": day,
        "recent_start": recent_start,
        "baseline_start": recent_start - timedelta(days=baseline_days),
    }
    frame = conn.execute(CATEGORY_MIX_SQL, params).df()
    base_days, recent_days = conn.execute(HISTORY_SQL, params).fetchall()[0]
    per_floor = math.ceil(floor * sample_size - 1e-9)
    frame["change"] = (frame["recent_share"] - frame["baseline_share"]) / frame["baseline_share"]
    enough = 2 * base_days >= min(baseline_days, window_days) and 2 * recent_days >= window_days
    frame["share_moved"] = enough & (
        (frame["baseline_n"] == 0) | (frame["recent_n"] == 0) | (frame["change"].abs() > max_change)
    )
    daily = frame["recent_n"] / max(recent_days, 1)
    # a floor unmet because the category was always small is an assumption that held: flag
    # only a category whose baseline days filled it
    baseline_daily = frame["baseline_n"] / max(base_days, 1)
    frame["floor_unmet"] = enough & (daily < per_floor) & (baseline_daily >= per_floor)
    note = (
        ""
        if enough
        else f"too little history: {base_days} baseline and {recent_days} recent days of traffic"
    )
    return frame, note
