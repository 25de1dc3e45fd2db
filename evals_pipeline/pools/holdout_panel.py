"""The holdout judged like the active pool, inside the seal (seeds 002 and 003).

At a rotation, the candidate and the baseline answer the holdout cases and the trusted judges
judge those answers with the active pool's rubric. Everything case-level stays in the holdout
store: the calls and their cache (`judge_cache` inside the store), the answers
(`holdout_panel_outputs`) and the verdicts (`holdout_panel_verdicts`). Only pass rates per
version and category leave it, read through `read_holdout` (logged in `pool_events`), into
`holdout_panel_evaluation` beside the same judges' pass rates on the active pool. Their
difference is the active-holdout gap that the `holdout` release gate reads: a candidate tuned
on the active pool looks better there than on cases it never saw.

The verdict of a case is the majority of the trusted judges' valid votes (a split vote or no
vote is no verdict, counted in `no_verdict`), the same rule on both sides. Cases added as
known failure modes (negative feedback) count on neither side: they are hard by selection and
almost all in the active pool.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from evals_pipeline.judging.candidates import AppVersion, candidate_calls
from evals_pipeline.judging.client import JudgeClient, RunStats, run_calls
from evals_pipeline.judging.panel import judge_outputs
from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.pools.evaluation import check_rotation_window, completed_quarters
from evals_pipeline.pools.store import read_holdout
from evals_pipeline.records import (
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_PANEL_OUTPUTS,
    HOLDOUT_PANEL_VERDICTS,
    JUDGE_VERDICTS,
    SYNTHETIC_WHY,
    sql_literal,
)
from evals_pipeline.warehouse import registered, transaction

# Pass rate per version and category of the judges' majority verdict per case. `{verdicts}`
# is a relation (case_id, app_version, judge, rubric, rubric_version, verdict), `{pool}` the
# pool whose cases count.
PANEL_SCORES_SQL = f"""
WITH v AS (
    SELECT v.case_id, v.app_version, v.verdict, p.category
    FROM {{verdicts}} v JOIN {GOLDEN_POOLS} p USING (case_id)
    WHERE p.pool = {{pool}} AND v.rubric = $rubric AND v.rubric_version = $rubric_version
      -- like for like: cases added as known failure modes (negative feedback) are hard by
      -- selection and almost all active; they are left out on both sides
      AND p.why <> 'known_failure_mode'
      -- synthetic cases are active only and not traffic: the holdout has none to match them
      AND p.why <> '{SYNTHETIC_WHY}'
      AND list_contains($judges, v.judge) AND list_contains($versions, v.app_version)
), c AS (
    SELECT case_id, app_version, any_value(category) AS category,
           CASE WHEN 2 * count(*) FILTER (WHERE verdict = 'pass') > count(verdict) THEN 1.0
                WHEN 2 * count(*) FILTER (WHERE verdict = 'pass') < count(verdict) THEN 0.0 END AS score
    FROM v GROUP BY case_id, app_version
)
SELECT app_version, category, count(score)::INT AS n, (count(*) - count(score))::INT AS no_verdict,
       avg(score) AS pass_rate, stddev_samp(score) / sqrt(count(score)) AS std_error
FROM c GROUP BY ALL ORDER BY ALL
"""


def already_evaluated(conn: duckdb.DuckDBPyConnection, quarter: date, rubric: Rubric) -> bool:
    return bool(
        conn.execute(
            f"SELECT count(*) FROM {HOLDOUT_PANEL_EVALUATION} WHERE quarter = ? AND rubric = ? AND rubric_version = ?",
            [quarter, rubric.name, rubric.version],
        ).fetchall()[0][0]
    )


@contextmanager
def inside_store(conn: duckdb.DuckDBPyConnection, alias: str) -> Iterator[None]:
    """Make the holdout store the connection's default database for a while: the call cache
    (`judge_cache`, unqualified in the client) is then the store's, never the warehouse's."""
    home = conn.execute("SELECT current_database()").fetchall()[0][0]
    conn.execute(f"USE {alias}")
    try:
        yield
    finally:
        conn.execute(f"USE {home}")


def _params(quarter: date, rubric: Rubric, judges: list[str], versions: list[str]) -> dict:
    return {
        "rubric": rubric.name,
        "rubric_version": rubric.version,
        "judges": judges,
        "versions": versions,
        "quarter": quarter,
    }


def judge_holdout_inside(
    conn: duckdb.DuckDBPyConnection,
    alias: str,
    cases: pd.DataFrame,
    quarter: date,
    client: JudgeClient,
    versions: Sequence[AppVersion],
    judges: list[str],
    rubric: Rubric,
    progress: Callable[[str], None],
    run_id: str,
) -> RunStats:
    """Answers and verdicts for the holdout `cases`, written to the holdout store only."""
    pii: Counter[str] = Counter()
    with inside_store(conn, alias):
        calls, keys = candidate_calls(cases, versions, pii)
        answers, stats = run_calls(client, conn, calls, progress, run_id=run_id)
        outputs = pd.DataFrame(
            [
                (quarter, c, v, m, r.response if r.error is None else None, r.error, r.cost_usd)
                for (c, v, m), r in zip(keys, answers, strict=True)
            ],
            columns=HOLDOUT_PANEL_OUTPUTS.column_names,
        )
        by_case = cases.set_index("case_id")
        subjects = [
            (
                (o.case_id, o.app_version),
                {**by_case.loc[o.case_id].to_dict(), "output": o.output},
                [rubric],
            )
            for o in outputs.itertuples()
            if o.output is not None
        ]
        judged, judge_stats = judge_outputs(client, conn, subjects, judges, pii, progress, run_id)
        verdicts = pd.DataFrame(
            [
                (
                    quarter,
                    *j.subject,
                    j.judge,
                    rubric.name,
                    rubric.version,
                    j.verdict,
                    j.result.error,
                )
                for j in judged
            ],
            columns=HOLDOUT_PANEL_VERDICTS.column_names,
        )
        with transaction(conn):
            for table, frame in (
                (HOLDOUT_PANEL_OUTPUTS, outputs),
                (HOLDOUT_PANEL_VERDICTS, verdicts),
            ):
                conn.execute(f"DELETE FROM {table.name} WHERE quarter = ?", [quarter])
                with registered(conn, _holdout_rows=frame):
                    conn.execute(
                        f"INSERT INTO {table.name} ({', '.join(table.column_names)}) "
                        f"SELECT {', '.join(table.column_names)} FROM _holdout_rows"
                    )
    stats.called += judge_stats.called
    stats.cached += judge_stats.cached
    stats.errors += judge_stats.errors
    stats.cost_usd += judge_stats.cost_usd
    return stats


def panel_scores(
    conn: duckdb.DuckDBPyConnection,
    alias: str,
    quarter: date,
    rubric: Rubric,
    judges: list[str],
    versions: list[str],
    run_id: str,
) -> pd.DataFrame:
    """`holdout_panel_evaluation` rows of one rotation: the same judges' pass rates on the
    active pool (judge_verdicts) and, through one logged holdout read, on the holdout pool."""
    params = _params(quarter, rubric, judges, versions)
    active = conn.execute(
        PANEL_SCORES_SQL.replace("{verdicts}", JUDGE_VERDICTS.name).replace(
            "{pool}", sql_literal("active")
        ),
        {k: v for k, v in params.items() if k != "quarter"},
    ).df()
    store_verdicts = (
        f"(SELECT * FROM {alias}.{HOLDOUT_PANEL_VERDICTS.name} WHERE quarter = $quarter)"
    )
    holdout = read_holdout(
        conn,
        PANEL_SCORES_SQL.replace("{verdicts}", store_verdicts).replace(
            "{pool}", sql_literal("holdout")
        ),
        params,  # type: ignore[arg-type]
        run_id=run_id,
        quarter=quarter,
        reason=f"holdout panel evaluation {quarter}: pass rates per version and category "
        f"({rubric.name} v{rubric.version}, judges {', '.join(judges)})",
    ).to_pandas()
    frame = pd.concat([active.assign(side="active"), holdout.assign(side="holdout")])
    frame = frame.assign(
        quarter=quarter,
        rubric=rubric.name,
        rubric_version=rubric.version,
        judges=", ".join(judges),
    )
    return frame[HOLDOUT_PANEL_EVALUATION.column_names].reset_index(drop=True)


def holdout_panel_cases(
    conn: duckdb.DuckDBPyConnection, alias: str, quarter: date, run_id: str, judges: list[str]
) -> pd.DataFrame:
    """The holdout pool's content, read once per rotation through the logged holdout read."""
    return read_holdout(
        conn,
        f"""SELECT h.* FROM {alias}.{HOLDOUT_CASES.name} h
            JOIN {GOLDEN_POOLS} p USING (case_id) WHERE p.pool = 'holdout' ORDER BY h.case_id""",
        [],
        run_id=run_id,
        quarter=quarter,
        reason=f"holdout panel evaluation {quarter}: candidate and baseline answer the holdout "
        f"cases, judged by {', '.join(judges)} inside the holdout store",
    ).to_pandas()


@dataclass(frozen=True)
class PanelRun:
    """Who answers and who judges at a rotation."""

    client: JudgeClient
    versions: Sequence[AppVersion]
    judges: list[str]
    rubric: Rubric


def evaluate(
    conn: duckdb.DuckDBPyConnection,
    alias: str,
    quarter: date,
    run: PanelRun,
    force: bool,
    log: Any,
    run_id: str,
) -> bool:
    """Judge the holdout of `quarter`'s rotation and write its `holdout_panel_evaluation` rows;
    False when nothing was judged (done already, no trusted judge, no version to generate)."""
    if already_evaluated(conn, quarter, run.rubric) and not force:
        log.info(f"holdout of {quarter} already judged with {run.rubric.name}: not read again")
        return False
    done = completed_quarters(conn)
    if (not done or done[-1] != quarter) and not force:
        # A re-run or backfill of an earlier quarter: its rotation window has passed (the
        # holdout has rotated since), so it is not judged after the fact. With force, the
        # window check below refuses it loudly.
        log.info(
            f"the holdout of {quarter} is not judged now: only the latest rotation's "
            f"({done[-1] if done else 'none yet'}) is, in its window"
        )
        return False
    if not run.judges or not run.versions:
        log.warning(
            f"no trusted judge for {run.rubric.name} v{run.rubric.version} (run "
            "evals_calibration) or no candidate/baseline to generate: the holdout is not judged "
            "this rotation"
        )
        return False
    check_rotation_window(conn, quarter)
    cases = holdout_panel_cases(conn, alias, quarter, run_id, run.judges)
    stats = judge_holdout_inside(
        conn,
        alias,
        cases,
        quarter,
        run.client,
        run.versions,
        run.judges,
        run.rubric,
        log.info,
        run_id,
    )
    log.info(f"holdout judged inside the seal: {stats.called:,} calls made")
    frame = panel_scores(
        conn, alias, quarter, run.rubric, run.judges, [v.name for v in run.versions], run_id
    )
    with transaction(conn), registered(conn, _panel_rows=frame):
        conn.execute(f"DELETE FROM {HOLDOUT_PANEL_EVALUATION} WHERE quarter = ?", [quarter])
        conn.execute(f"INSERT INTO {HOLDOUT_PANEL_EVALUATION} SELECT * FROM _panel_rows")
    return True
