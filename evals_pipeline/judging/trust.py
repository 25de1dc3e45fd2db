"""Which judges may vote: those the calibration trusts (seed 002: a judge not measured against
the expert, or measured and found wanting, is reported beside the ensemble, never counted in
it).

A judge is trusted for the project's pass/fail rubric when its latest test-split measurement
in `judge_calibration` (category 'all', this rubric version) clears the bar. The dimensional
rubric has no human labels of its own: a judge's trust on the pass/fail rubric stands for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from evals_pipeline.judging.rubrics import Rubric, failure_mode_rubric
from evals_pipeline.records import FAILURE_MODE_JUDGES, JUDGE_CALIBRATION

# Below this Cohen's kappa against the expert a judge must not be deployed (seed 002), even
# when its TPR and TNR clear the bar (a rare class hides a kappa that low).
MIN_KAPPA = 0.5


def trusted_judges(
    conn: duckdb.DuckDBPyConnection, panel: Sequence[str], rubric: Rubric
) -> list[str]:
    """The panel's judges trusted for this rubric version, in panel order."""
    rows = conn.execute(
        f"""SELECT judge FROM {JUDGE_CALIBRATION}
            WHERE split = 'test' AND category = 'all' AND rubric = ? AND rubric_version = ? AND trusted""",
        [rubric.name, rubric.version],
    ).fetchall()
    trusted = {r[0] for r in rows}
    return [j for j in panel if j in trusted]


def enabled_failure_modes(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, Rubric]]:
    """(mode, rubric) of each per-failure-mode judge enabled at the last calibration (enough
    gold fails of the mode; `failure_mode_judges`)."""
    return [
        (mode, failure_mode_rubric(mode, definition))
        for mode, definition in conn.execute(
            f"SELECT failure_mode, definition FROM {FAILURE_MODE_JUDGES} WHERE enabled ORDER BY 1"
        ).fetchall()
    ]
