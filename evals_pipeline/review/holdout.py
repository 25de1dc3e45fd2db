"""Layer 3 of seed 003: the principal expert reviews a sample of the holdout at each rotation.

- `queue_rotation`: inside the holdout store, a sample of the rotation's holdout cases (an
  equal share per category, by a stable hash) with the candidate's and the baseline's
  answers (made and judged inside the seal by the holdout panel evaluation) becomes
  `holdout_review_items`, with the trusted judges' verdicts the app reveals after the expert
  decides. Item ids are opaque hashes: the app version is blinded in the session.
- `export_queue`: the latest rotation's queue, written as one DuckDB file into the sealed
  review area (a logged holdout read), atomically, for the review app's sealed session.
- `collect`: the sealed label files into the holdout store (bad lines quarantined there,
  counted), each new line of the view log into `pool_events` as a holdout read, and, through
  one logged read, the agreement of every judge (and their majority) with the expert per
  rotation: the only thing that leaves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from evals_pipeline.pools.holdout_panel import inside_store
from evals_pipeline.pools.store import log_pool_event, read_holdout
from evals_pipeline.records import (
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    HOLDOUT_PANEL_OUTPUTS,
    HOLDOUT_PANEL_VERDICTS,
    HOLDOUT_REVIEW,
    HOLDOUT_REVIEW_ITEMS,
    HOLDOUT_REVIEW_LABELS,
    HOLDOUT_REVIEW_QUARANTINE,
    HUMAN_LABELS,
    POOL_EVENTS,
    QUARANTINED_LABELS,
    sql_literal,
)
from evals_pipeline.review.labelstore import LabelReader
from evals_pipeline.review.sealed import (
    EXPORT_COLUMNS,
    QUEUE,
    QUEUE_TABLE,
    labels_dir,
    queue_file,
    read_views,
)

__all__ = [
    "Collected",
    "collect",
    "export_queue",
    "queue_latest_rotation",
    "unlogged_views",
]
from evals_pipeline.warehouse import registered, transaction

# The prefix of every pool_events reason this module writes (the check counts by it).
LAYER3 = "layer 3 review"

# One row per queued answer. Cases are drawn round-robin over the categories in a stable
# hash order (an equal share each, all of a small category), every answer of a drawn case
# queued; positions interleave versions by the opaque item id.
QUEUE_SQL = f"""
WITH answers AS (
    SELECT o.case_id, o.app_version, o.output, h.trace_id, h.category, h.user_segment, h.input,
           h.reference_good, h.reference_borderline
    FROM {{store}}.{HOLDOUT_PANEL_OUTPUTS} o
    JOIN {{store}}.{HOLDOUT_CASES} h USING (case_id)
    JOIN {GOLDEN_POOLS} p USING (case_id)
    WHERE o.quarter = $quarter AND o.output IS NOT NULL AND p.pool = 'holdout'
), drawn AS (
    SELECT case_id FROM (SELECT DISTINCT case_id, category FROM answers)
    ORDER BY row_number() OVER (PARTITION BY category ORDER BY md5(case_id || $quarter::VARCHAR)),
             category
    LIMIT $cases
), verdicts AS (
    SELECT case_id, app_version,
           to_json(list({{'judge': judge, 'rubric': rubric || ' ' || rubric_version,
                         'verdict': verdict, 'critique': NULL, 'error': error}} ORDER BY judge)) AS v
    FROM {{store}}.{HOLDOUT_PANEL_VERDICTS} WHERE quarter = $quarter GROUP BY ALL
), items AS (
    SELECT a.*, 'h-' || left(md5($quarter::VARCHAR || '|' || a.case_id || '|' || a.app_version), 16) AS item_id
    FROM answers a JOIN drawn USING (case_id)
)
SELECT $quarter AS quarter, '{QUEUE}' AS queue,
       row_number() OVER (ORDER BY i.item_id)::INTEGER AS position, i.item_id,
       'holdout' AS subject, i.trace_id, i.case_id, i.app_version, i.category, i.user_segment,
       NULL::TIMESTAMP AS ts, i.input, i.output, NULL::JSON AS context, NULL::JSON AS tool_calls,
       NULL::JSON AS metadata, i.reference_good, i.reference_borderline,
       'Layer 3: a sample of the sealed holdout, reviewed at each rotation. Judge it as you '
       || 'would any answer; the version that wrote it is hidden.' AS reason,
       coalesce(v.v, '[]'::JSON) AS judge_verdicts, now()::TIMESTAMP AS prepared_at,
       $principal AS principal
FROM items i LEFT JOIN verdicts v USING (case_id, app_version)
"""

# Per rotation and judge (and `panel`: the strict majority of the valid votes), the expert's
# newest current label against the verdict the judge had given when the answer was queued
# (the one the session reveals; a later re-judging of the holdout does not change it).
AGREEMENT_SQL = f"""
WITH items AS (SELECT quarter, item_id, judge_verdicts FROM {{store}}.{HOLDOUT_REVIEW_ITEMS}),
expert AS (
    SELECT subject_id AS item_id, verdict FROM {{store}}.{HOLDOUT_REVIEW_LABELS}
    WHERE kind = 'pointwise' AND current
    QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY labelled_at DESC NULLS LAST) = 1
), votes AS (
    SELECT quarter, item_id, v.judge, v.verdict
    FROM (SELECT quarter, item_id,
                 unnest(from_json(judge_verdicts, '[{{"judge": "VARCHAR", "verdict": "VARCHAR"}}]')) AS v
          FROM items)
    WHERE v.verdict IN ('pass', 'fail')
), panel AS (
    SELECT quarter, item_id, 'panel' AS judge,
           CASE WHEN 2 * count(*) FILTER (WHERE verdict = 'pass') > count(*) THEN 'pass'
                WHEN 2 * count(*) FILTER (WHERE verdict = 'pass') < count(*) THEN 'fail' END AS verdict
    FROM votes GROUP BY ALL
), judged AS (SELECT * FROM votes UNION ALL SELECT * FROM panel WHERE verdict IS NOT NULL)
SELECT j.quarter, j.judge,
       count(e.verdict)::INTEGER AS n,
       count(*) FILTER (WHERE e.verdict = 'pass' AND j.verdict = 'pass')::INTEGER AS both_pass,
       count(*) FILTER (WHERE e.verdict = 'fail' AND j.verdict = 'fail')::INTEGER AS both_fail,
       count(*) FILTER (WHERE e.verdict = 'fail' AND j.verdict = 'pass')::INTEGER AS judge_only_pass,
       count(*) FILTER (WHERE e.verdict = 'pass' AND j.verdict = 'fail')::INTEGER AS expert_only_pass,
       (SELECT count(*) FROM items x WHERE x.quarter = j.quarter)::INTEGER AS queued,
       (SELECT count(*) FROM items x JOIN expert y USING (item_id) WHERE x.quarter = j.quarter)::INTEGER AS labelled
FROM judged j LEFT JOIN expert e USING (item_id)
GROUP BY ALL ORDER BY ALL
"""


def queued_quarters(conn: duckdb.DuckDBPyConnection, alias: str) -> set[date]:
    return {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT quarter FROM {alias}.{HOLDOUT_REVIEW_ITEMS}"
        ).fetchall()
    }


def answered_quarters(conn: duckdb.DuckDBPyConnection, alias: str) -> list[date]:
    """Rotations whose holdout was answered inside the seal (the panel evaluation ran)."""
    rows = conn.execute(
        f"SELECT DISTINCT quarter FROM {alias}.{HOLDOUT_PANEL_OUTPUTS} WHERE output IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def queue_rotation(
    conn: duckdb.DuckDBPyConnection, alias: str, quarter: date, cases: int, principal: str
) -> int:
    """(Re)build the rotation's queue inside the store; returns the answers queued. Nothing
    leaves the store here: the rows go from one of its tables to another."""
    sql = QUEUE_SQL.replace("{store}", alias)
    params = {"quarter": quarter, "cases": cases, "principal": principal}
    with transaction(conn):
        conn.execute(f"DELETE FROM {alias}.{HOLDOUT_REVIEW_ITEMS} WHERE quarter = ?", [quarter])
        conn.execute(
            f"INSERT INTO {alias}.{HOLDOUT_REVIEW_ITEMS} ({', '.join(HOLDOUT_REVIEW_ITEMS.column_names)}) {sql}",
            params,
        )
    return conn.execute(
        f"SELECT count(*) FROM {alias}.{HOLDOUT_REVIEW_ITEMS} WHERE quarter = ?", [quarter]
    ).fetchall()[0][0]


def queue_latest_rotation(
    conn: duckdb.DuckDBPyConnection, alias: str, cases: int, principal: str, requeue: bool
) -> tuple[date, int] | None:
    """Queue the latest rotation whose holdout was answered, once (again with `requeue`);
    (quarter, answers queued) when a queue was built now. Older rotations are not queued
    after the fact: their review was due when they were current."""
    answered = answered_quarters(conn, alias)
    if not cases or not answered:
        return None
    latest = answered[-1]
    if latest in queued_quarters(conn, alias) and not requeue:
        return None
    return latest, queue_rotation(conn, alias, latest, cases, principal)


def exported_state(area: Path) -> tuple[date, object] | None:
    """(quarter, prepared_at) of the queue file in the sealed area, or None."""
    path = queue_file(area)
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute(
                f"SELECT max(quarter), max(prepared_at) FROM {QUEUE_TABLE}"
            ).fetchall()[0]
    except duckdb.Error:
        return None  # unreadable: written again
    return (row[0], row[1]) if row[0] else None


def export_queue(
    conn: duckdb.DuckDBPyConnection, alias: str, area: Path, run_id: str
) -> tuple[date | None, int]:
    """Write the latest rotation's queue to the sealed area (a new file renamed over the old
    one, so the sealed session never reads half of it), unless it is there already. Returns
    (quarter, answers) of the file now there."""
    quarter, prepared, n = conn.execute(
        f"""SELECT quarter, max(prepared_at), count(*) FROM {alias}.{HOLDOUT_REVIEW_ITEMS}
            GROUP BY quarter ORDER BY quarter DESC LIMIT 1"""
    ).fetchone() or (None, None, 0)
    if quarter is None or exported_state(area) == (quarter, prepared):
        return quarter, n
    area.mkdir(parents=True, exist_ok=True)
    tmp = area / f".{queue_file(area).name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    log_pool_event(
        conn,
        run_id,
        quarter,
        "holdout_read",
        f"{LAYER3} {quarter}: the queue of holdout answers written to the sealed review area "
        "for the principal expert's sealed session",
        n_cases=n,
    )
    conn.execute(f"ATTACH {sql_literal(str(tmp))} AS sealed_queue")
    try:
        conn.execute(
            f"CREATE TABLE sealed_queue.{QUEUE_TABLE} AS SELECT {', '.join(EXPORT_COLUMNS)} "
            f"FROM {alias}.{HOLDOUT_REVIEW_ITEMS} WHERE quarter = ? ORDER BY position",
            [quarter],
        )
    finally:
        conn.execute("DETACH sealed_queue")
    os.replace(tmp, queue_file(area))
    return quarter, n


@dataclass(frozen=True)
class Collected:
    labels: int
    quarantined: int
    views: int
    new_views: int
    unlogged: int  # views in the log with no holdout read in pool_events after this run


def load_sealed_labels(conn: duckdb.DuckDBPyConnection, alias: str, area: Path) -> tuple[int, int]:
    """The sealed label files into the store: a valid pointwise label of a queued answer is
    kept, every other line quarantined there with its reason (lines in = kept + quarantined).
    Returns (kept, quarantined)."""
    reader = LabelReader(labels_dir(area))
    labels = reader.frame(f"SELECT * FROM {HUMAN_LABELS}")
    quarantined = reader.frame(f"SELECT * FROM {QUARANTINED_LABELS}")
    queued = {
        r[0] for r in conn.execute(f"SELECT item_id FROM {alias}.{HOLDOUT_REVIEW_ITEMS}").fetchall()
    }
    fits = (labels["kind"] == "pointwise") & labels["subject_id"].isin(queued)
    misfits = labels[~fits]
    moved = pd.DataFrame(
        {
            "partition_date": pd.NaT,
            "source_file": misfits["source_file"],
            "source_row": misfits["source_row"],
            "reason": "not_a_queued_holdout_answer",
            "detail": "subject "
            + misfits["subject_id"].astype(str)
            + " ("
            + misfits["kind"]
            + ") is not a pass/fail label of an answer in the holdout review queue",
            "trace_id": None,
            "raw": None,
            "sealed": True,
        }
    )
    quarantine = pd.concat([quarantined, moved], ignore_index=True)
    with inside_store(conn, alias), transaction(conn):
        for table, frame in (
            (HOLDOUT_REVIEW_LABELS, labels[fits]),
            (HOLDOUT_REVIEW_QUARANTINE, quarantine),
        ):
            conn.execute(f"DELETE FROM {table.name}")
            with registered(conn, _sealed_rows=frame):
                cols = ", ".join(table.column_names)
                conn.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM _sealed_rows")
    return int(fits.sum()), len(quarantine)


def view_reason(view: dict) -> str:
    """The pool_events reason of one view; its view id makes it unique (re-runs add nothing)."""
    if view.get("unreadable"):
        return f"{LAYER3}: an unreadable line of the sealed view log, counted as a view [view {view['view_id']}]"
    return f"{LAYER3}: {view['annotator']} viewed a holdout answer in the sealed session [view {view['view_id']}]"


def log_views(conn: duckdb.DuckDBPyConnection, views: list[dict], fallback: date | None) -> int:
    """Each view not yet in `pool_events` appended there as a holdout read; returns how many
    were new."""
    if not views:
        return 0
    rows = pd.DataFrame(
        [
            {
                "event_at": pd.Timestamp(v["viewed_at"]).tz_convert(None)
                if v.get("viewed_at")
                else pd.Timestamp.now(),
                "run_id": f"review-app:{v.get('annotator', 'unknown')}",
                "quarter": pd.Timestamp(v["quarter"]).date() if v.get("quarter") else fallback,
                "case_id": v.get("case_id"),
                "reason": view_reason(v),
            }
            for v in views
        ]
    )
    with registered(conn, _views=rows), transaction(conn):
        before = conn.execute(f"SELECT count(*) FROM {POOL_EVENTS}").fetchall()[0][0]
        conn.execute(
            f"""INSERT INTO {POOL_EVENTS} (event_at, run_id, quarter, event, case_id, from_pool,
                       to_pool, reason, n_cases)
                SELECT event_at, run_id, quarter, 'holdout_read', case_id, NULL, NULL, reason, 1
                FROM _views WHERE reason NOT IN (SELECT reason FROM {POOL_EVENTS}
                                                 WHERE event = 'holdout_read')"""
        )
        after = conn.execute(f"SELECT count(*) FROM {POOL_EVENTS}").fetchall()[0][0]
    return after - before


def unlogged_views(conn: duckdb.DuckDBPyConnection, views: list[dict]) -> int:
    """Views in the sealed log with no holdout read in `pool_events` (0 when all are logged)."""
    logged = {
        r[0]
        for r in conn.execute(
            f"SELECT reason FROM {POOL_EVENTS} WHERE event = 'holdout_read' AND reason LIKE ?",
            [f"{LAYER3}: %[view %]"],
        ).fetchall()
    }
    return sum(view_reason(v) not in logged for v in views)


def kappa(row: pd.Series) -> float | None:
    """Cohen's kappa of the counts (scikit-learn on the pairs they stand for); None when
    undefined (no pairs, or one class on both sides)."""
    pairs = [
        ("pass", "pass", row["both_pass"]),
        ("fail", "fail", row["both_fail"]),
        ("fail", "pass", row["judge_only_pass"]),
        ("pass", "fail", row["expert_only_pass"]),
    ]
    expert = np.repeat([p[0] for p in pairs], [p[2] for p in pairs])
    judge = np.repeat([p[1] for p in pairs], [p[2] for p in pairs])
    if len(expert) == 0 or (len(set(expert)) == 1 and set(expert) == set(judge)):
        return None
    return float(cohen_kappa_score(expert, judge))


def agreement(
    conn: duckdb.DuckDBPyConnection,
    alias: str,
    views: list[dict],
    quarantined: int,
    run_id: str,
    quarter: date,
) -> pd.DataFrame:
    """`holdout_review` rows: through one logged read, per rotation and judge the confusion
    counts of judge vs expert; with the views and the quarantine counted beside them."""
    counts = read_holdout(
        conn,
        AGREEMENT_SQL.replace("{store}", alias),
        [],
        run_id=run_id,
        quarter=quarter,
        reason=f"{LAYER3}: agreement of the judges with the expert per rotation (counts only)",
    ).to_pandas()
    seen = pd.DataFrame([v for v in views if not v.get("unreadable")])
    per_quarter = (
        seen.assign(quarter=pd.to_datetime(seen["quarter"]).dt.date)
        .groupby("quarter")
        .agg(views=("view_id", "count"), viewed=("item_id", "nunique"))
        if len(seen)
        else pd.DataFrame(columns=["views", "viewed"])
    )
    counts = counts.join(per_quarter, on="quarter")
    counts[["views", "viewed"]] = counts[["views", "viewed"]].fillna(0).astype(int)
    agreeing = counts["both_pass"] + counts["both_fail"]
    counts["agreement"] = (agreeing / counts["n"]).where(counts["n"] > 0)
    counts["kappa"] = counts.apply(kappa, axis=1) if len(counts) else []
    counts["quarantined"] = quarantined
    return counts[HOLDOUT_REVIEW.column_names]


def collect(
    conn: duckdb.DuckDBPyConnection, alias: str, area: Path, run_id: str
) -> tuple[pd.DataFrame, Collected]:
    """Labels and views of the sealed area into the store and `pool_events`; the agreement
    rows of every queued rotation."""
    kept, quarantined = load_sealed_labels(conn, alias, area)
    views = read_views(area)
    quarters = sorted(queued_quarters(conn, alias))
    latest = quarters[-1] if quarters else None
    new = log_views(conn, views, latest)
    got = Collected(kept, quarantined, len(views), new, unlogged_views(conn, views))
    if latest is None:
        return pd.DataFrame(columns=HOLDOUT_REVIEW.column_names), got
    return agreement(conn, alias, views, quarantined, run_id, latest), got
