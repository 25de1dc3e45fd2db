"""The holdout evaluation seam: the one place holdout content is scored, once per rotation.

`evaluate_holdout` refuses unless the quarter is the latest completed rotation (the rotation
window), and refuses a second evaluation of the same quarter by the same evaluator unless
forced; every read is logged in pool_events (forced ones say so). Evaluators score a case
from its content; the judge ensemble plugs in here (issue 4). The built-in evaluator is
deterministic and needs no model: token F1 of the production output against the
high-quality reference (a reference-based sanity metric, DESIGN's signal hierarchy row 7).
Only per-category aggregates leave the function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.pools.rotation import completed_quarters
from evals_pipeline.pools.store import read_holdout
from evals_pipeline.records import GOLDEN_POOLS, HOLDOUT_CASES, HOLDOUT_EVALUATION
from evals_pipeline.warehouse import transaction

Evaluator = Callable[[Mapping[str, object]], float]
_TOKEN = re.compile(r"[a-z0-9]+")


class HoldoutAccessError(PermissionError):
    """A read of the holdout pool outside the rules."""


def reference_token_f1(case: Mapping[str, object]) -> float:
    """Token-overlap F1 between the output and the high-quality reference, in [0, 1]."""
    out = _TOKEN.findall(str(case["output"]).lower())
    ref = _TOKEN.findall(str(case["reference_good"]).lower())
    if not out or not ref:
        return 0.0
    common = 0
    pool: dict[str, int] = {}
    for t in ref:
        pool[t] = pool.get(t, 0) + 1
    for t in out:
        if pool.get(t, 0) > 0:
            common += 1
            pool[t] -= 1
    if common == 0:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


EVALUATORS: dict[str, Evaluator] = {"reference_token_f1": reference_token_f1}


def already_evaluated(conn: duckdb.DuckDBPyConnection, quarter: date, evaluator: str) -> bool:
    return bool(
        conn.execute(
            f"SELECT count(*) FROM {HOLDOUT_EVALUATION} WHERE quarter = ? AND evaluator = ?",
            [quarter, evaluator],
        ).fetchall()[0][0]
    )


def check_rotation_window(conn: duckdb.DuckDBPyConnection, quarter: date) -> None:
    """Holdout content is evaluated only for the latest completed rotation."""
    done = completed_quarters(conn)
    if not done or done[-1] != quarter:
        latest = done[-1] if done else "none yet"
        raise HoldoutAccessError(
            f"holdout evaluation runs only in the rotation window of the latest rotation ({latest}); asked for {quarter}"
        )


def evaluate_holdout(
    conn: duckdb.DuckDBPyConnection,
    holdout_alias: str,
    quarter: date,
    run_id: str,
    evaluator: str = "reference_token_f1",
    force: bool = False,
) -> list[tuple]:
    """Score the current holdout pool for the rotation of `quarter`; return the rows written."""
    check_rotation_window(conn, quarter)
    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown evaluator {evaluator!r}; known: {sorted(EVALUATORS)}")
    seen = conn.execute(
        f"SELECT count(*) FROM {HOLDOUT_EVALUATION} WHERE quarter = ? AND evaluator = ?",
        [quarter, evaluator],
    ).fetchall()[0][0]
    if seen and not force:
        raise HoldoutAccessError(
            f"the holdout of {quarter} was already evaluated by {evaluator}; a second look needs force=true (and is recorded)"
        )
    reason = f"holdout evaluation {quarter} by {evaluator}" + (
        " (forced re-evaluation)" if force else ""
    )
    cases = read_holdout(
        conn,
        f"""SELECT h.* FROM {holdout_alias}.{HOLDOUT_CASES.name} h
            JOIN {GOLDEN_POOLS} p USING (case_id) WHERE p.pool = 'holdout' ORDER BY h.case_id""",
        [],
        run_id=run_id,
        quarter=quarter,
        reason=reason,
    ).to_pandas()
    rows = score_by_category(cases, quarter, evaluator)
    with transaction(conn):
        conn.execute(
            f"DELETE FROM {HOLDOUT_EVALUATION} WHERE quarter = ? AND evaluator = ?",
            [quarter, evaluator],
        )
        if rows:
            conn.executemany(
                f"INSERT INTO {HOLDOUT_EVALUATION} ({', '.join(HOLDOUT_EVALUATION.column_names)}) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
    return rows


def score_by_category(cases: pd.DataFrame, quarter: date, evaluator: str) -> list[tuple]:
    """(quarter, evaluator, category, n, mean, SE) rows from case content (output, references)."""
    score = EVALUATORS[evaluator]
    by_category: dict[str, list[float]] = {}
    for case in cases.to_dict("records"):
        by_category.setdefault(case["category"], []).append(score(case))
    rows = []
    for category, scores in sorted(by_category.items()):
        arr = np.asarray(scores)
        se = float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else None
        rows.append((quarter, evaluator, category, len(arr), float(arr.mean()), se))
    return rows
