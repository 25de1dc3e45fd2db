"""What the judges are measured on and how: the labelled subjects, the judges' agreement with
the principal expert per split and category, and pass rates corrected for judge error."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import pandas as pd
from duckdb import DuckDBPyConnection

from evals_pipeline.calibration.evidence import EXTERNAL_PREFIX
from evals_pipeline.calibration.metrics import binary_agreement, corrected_pass_rate
from evals_pipeline.calibration.test_split import Look
from evals_pipeline.judging.rubrics import FAILURE_MODE_PREFIX
from evals_pipeline.records import (
    CALIBRATION_TEST_USES,
    CALIBRATION_VERDICTS,
    CANDIDATE_OUTPUTS,
    EXTERNAL_VERDICTS,
    GOLD_LABELS,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    PAIRWISE_VERDICTS,
    SYNTHETIC_INPUTS,
    TRACES,
    UNCATEGORIZED,
    UNSEALED_POOL,
    VISIBLE_TRACES,
)
from evals_pipeline.warehouse import registered


def principal_annotator(conn, configured: str) -> str:
    """The configured principal expert, else the annotator with the most pointwise labels."""
    if configured:
        return configured
    row = conn.execute(
        f"SELECT annotator FROM {HUMAN_LABELS} WHERE kind = 'pointwise' AND current GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchall()
    return row[0][0] if row else ""


SUBJECTS_SQL = f"""
SELECT l.subject_id, t.category, t.input, t.output, r.reference_good, r.reference_borderline, l.split,
       l.verdict = 'pass' AS human_pass
FROM {GOLD_LABELS} l JOIN {VISIBLE_TRACES} t ON t.trace_id = l.subject_id JOIN {{refs}} r ON r.trace_id = l.subject_id
WHERE l.kind = 'pointwise' AND l.verdict IS NOT NULL
UNION ALL
SELECT l.subject_id, c.category, c.input, c.output, c.reference_good, c.reference_borderline, l.split,
       l.verdict = 'pass'
FROM {GOLD_LABELS} l JOIN {GOLDEN_CASES} c ON c.case_id = l.subject_id JOIN {UNSEALED_POOL} p USING (case_id)
WHERE l.kind = 'pointwise' AND l.verdict IS NOT NULL
UNION ALL
-- candidate outputs labelled from the review app's disagreement queue (subject case_id|app_version)
SELECT l.subject_id, c.category, c.input, o.output, c.reference_good, c.reference_borderline, l.split,
       l.verdict = 'pass'
FROM {GOLD_LABELS} l JOIN {CANDIDATE_OUTPUTS} o ON o.case_id || '|' || o.app_version = l.subject_id
JOIN {GOLDEN_CASES} c ON c.case_id = o.case_id JOIN {UNSEALED_POOL} p ON p.case_id = o.case_id
WHERE l.kind = 'pointwise' AND l.verdict IS NOT NULL
  AND o.output IS NOT NULL
"""


# Why a gold label measures no judge: every gold label is either used or counted here.
SKIPPED_LABELS_SQL = f"""
SELECT reason, count(*) FROM (
    SELECT CASE
        WHEN t.trace_id IS NOT NULL AND t.sealed THEN 'on a sealed trace (holdout reservoir)'
        WHEN t.trace_id IS NOT NULL THEN 'on a trace without references (add them to the reviewed files)'
        WHEN p.pool = 'holdout' THEN 'on a holdout case'
        ELSE 'on a subject not in the warehouse (not ingested, quarantined, or unknown)'
    END AS reason
    FROM {GOLD_LABELS} l
    LEFT JOIN _subjects s ON s.subject_id = l.subject_id
    LEFT JOIN {TRACES} t ON t.trace_id = l.subject_id
    LEFT JOIN {GOLDEN_POOLS} p ON p.case_id = split_part(l.subject_id, '|', 1)
    LEFT JOIN _external e ON e.subject_id = l.subject_id
    -- a synthetic input's label measures the realism filter (synthetic.admission)
    LEFT JOIN {SYNTHETIC_INPUTS} y ON y.synthetic_id = l.subject_id
    WHERE l.kind = 'pointwise' AND l.verdict IS NOT NULL AND s.subject_id IS NULL AND e.subject_id IS NULL
      AND y.synthetic_id IS NULL
) GROUP BY 1 ORDER BY 1
"""


def skipped_labels(
    conn: DuckDBPyConnection, subjects: pd.DataFrame, external: pd.DataFrame
) -> dict[str, int]:
    """Why gold labels measure no judge: reason -> count, for the gold pointwise labels on
    neither a judged subject (`subjects`) nor an imported verdict's subject (`external`)."""
    with registered(
        conn,
        _subjects=subjects[["subject_id"]],
        _external=external[["subject_id"]].drop_duplicates(),
    ):
        return dict(conn.execute(SKIPPED_LABELS_SQL).fetchall())


def calibrated_now(measured: pd.DataFrame, calibrated: list[str]) -> pd.DataFrame:
    """The verdicts measured this run: the panel's judges, the classifier judge and imported
    judges. A judge that left the panel keeps only its history (calibration_test_uses, the
    judge cache)."""
    keep = measured["judge"].isin(calibrated) | measured["judge"].str.startswith(EXTERNAL_PREFIX)
    return measured[keep]


# The gold label a verdict is measured against: a failure mode's rubric against that mode's
# labels (gold_labels kind = the rubric's name), every other rubric against pass/fail.
GOLD_KIND_OF_VERDICT = (
    f"CASE WHEN v.rubric LIKE '{FAILURE_MODE_PREFIX}%' THEN v.rubric ELSE 'pointwise' END"
)

MEASURED_SQL = f"""
SELECT v.judge, v.rubric, v.rubric_version, l.split, v.category, l.verdict = 'pass' AS human_pass, v.verdict = 'pass' AS judge_pass,
       v.subject_id, l.labelled_quarter
FROM {CALIBRATION_VERDICTS} v JOIN {GOLD_LABELS} l ON l.subject_id = v.subject_id AND l.kind = {GOLD_KIND_OF_VERDICT}
WHERE l.verdict IS NOT NULL AND v.verdict IS NOT NULL
"""

# Imported pointwise verdicts on gold-labelled subjects: calibrated beside the litellm judges
# (no call is made). A sealed trace or a holdout case measures no judge, as in SUBJECTS_SQL;
# the category is the subject's when the warehouse knows it, else the item's segment.
EXTERNAL_SUBJECTS_SQL = f"""
SELECT v.subject_id, coalesce(t.category, c.category, nullif(v.segment, 'all'), '{UNCATEGORIZED}') AS category,
       v.judge, v.rubric, v.rubric_version, v.verdict, NULL AS error
FROM {EXTERNAL_VERDICTS} v
JOIN {GOLD_LABELS} l ON l.subject_id = v.subject_id AND l.kind = 'pointwise' AND l.verdict IS NOT NULL
LEFT JOIN {TRACES} t ON t.trace_id = v.subject_id
LEFT JOIN {GOLDEN_CASES} c ON c.case_id = v.subject_id
LEFT JOIN {GOLDEN_POOLS} p ON p.case_id = v.subject_id
WHERE v.kind = 'pointwise' AND v.current AND NOT coalesce(t.sealed, false) AND p.pool IS DISTINCT FROM 'holdout'
ORDER BY v.judge, v.subject_id
"""


def test_window(measured: pd.DataFrame, min_labels: int) -> date | None:
    """Re-validation (seed 002): the first quarter of the latest labelled quarters that
    together hold `min_labels` test items; None (every quarter) when all of them do not."""
    test = measured[measured["split"] == "test"].dropna(subset=["labelled_quarter"])
    per_quarter = test.drop_duplicates("subject_id").groupby("labelled_quarter").size()
    reached = per_quarter.sort_index(ascending=False).cumsum()
    reached = reached[reached >= min_labels]
    return pd.Timestamp(reached.index[0]).date() if len(reached) else None


def within_window(measured: pd.DataFrame, since: date | None) -> pd.DataFrame:
    """The measured rows with the test split cut to the re-validation window (older test
    items are retired: measured no more, and never moved to train or dev)."""
    if since is None:
        return measured
    quarter = pd.to_datetime(measured["labelled_quarter"])
    keep = (measured["split"] != "test") | (quarter >= pd.Timestamp(since))
    return measured[keep]


def measured_in_windows(
    measured: pd.DataFrame, min_labels: int, threshold: float, apart: Sequence[str] = ()
) -> pd.DataFrame:
    """calibration_rows of `measured`, each test split cut to its re-validation window. The
    rubrics in `apart` (the realism filter's: its items are synthetic inputs, not outputs)
    get a window of their own, so their labels neither stretch nor shorten the outputs'."""
    own = measured["rubric"].isin(list(apart))
    frames = []
    for part in (measured[~own], measured[own]):
        if len(part):
            since = test_window(part, min_labels)
            frames.append(calibration_rows(within_window(part, since), threshold, since))
    return pd.concat(frames, ignore_index=True) if frames else calibration_rows(measured, threshold)


def test_items_measured(
    calib: pd.DataFrame, windows: dict[tuple[str, str, str], date | None]
) -> pd.DataFrame:
    """The test rows of `calib` each judge's stored measurement covers (its window)."""
    parts = [
        within_window(g, windows.get(key))
        for key, g in calib.groupby(["judge", "rubric", "rubric_version"])
    ]
    return pd.concat(parts) if parts else calib


def calibration_rows(
    measured: pd.DataFrame, threshold: float, since: date | None = None
) -> pd.DataFrame:
    """One row per judge x rubric version x split x category (and 'all'); the test split's
    rows cover the re-validation window starting at `since`."""
    out = []
    for (judge, rubric, version, split), g in measured.groupby(
        ["judge", "rubric", "rubric_version", "split"]
    ):
        for category, part in [("all", g), *sorted(g.groupby("category"))]:
            a = binary_agreement(part["human_pass"].to_numpy(), part["judge_pass"].to_numpy())
            trusted = (
                (a.tpr >= threshold and a.tnr >= threshold)
                if split == "test" and category == "all"
                else None
            )
            out.append(
                (
                    judge,
                    rubric,
                    version,
                    split,
                    category,
                    a.n,
                    a.tp,
                    a.fn,
                    a.tn,
                    a.fp,
                    a.tpr,
                    *a.tpr_ci,
                    a.tnr,
                    *a.tnr_ci,
                    a.accuracy,
                    *a.accuracy_ci,
                    a.balanced_accuracy,
                    *a.balanced_accuracy_ci,
                    a.kappa,
                    *a.kappa_ci,
                    trusted,
                    threshold,
                    None,  # position consistency: filled in from pairwise_verdicts
                    since if split == "test" else None,
                    None,  # trust status: set once the test rows of this run are settled
                )
            )
    return pd.DataFrame(out, columns=JUDGE_CALIBRATION.column_names)


def with_trust_status(
    frame: pd.DataFrame, newest: date | None, traffic: date | None
) -> pd.DataFrame:
    """trust_status of the test split's 'all' rows: not_trusted; needs_recalibration when the
    newest test items measured are from a quarter older than the traffic's latest (trust
    decays with the quarter: re-validate on its labels); else trusted."""

    def status(row: pd.Series) -> str | None:
        if row["split"] != "test" or row["category"] != "all":
            return None
        if not row["trusted"]:
            return "not_trusted"
        stale = newest is not None and traffic is not None and newest < traffic
        return "needs_recalibration" if stale else "trusted"

    statuses = [status(row) for _, row in frame.iterrows()]
    return frame.assign(trust_status=pd.Series(statuses, index=frame.index, dtype=object))


def position_consistency(conn: DuckDBPyConnection) -> dict[str, float]:
    """Per judge: the share of its pairwise verdicts that agree across presentation orders."""
    return dict(
        conn.execute(
            f"SELECT judge, avg(position_consistent::INT) FROM {PAIRWISE_VERDICTS} "
            "WHERE position_consistent IS NOT NULL GROUP BY 1"
        ).fetchall()
    )


def with_position_consistency(frame: pd.DataFrame, consistency: dict[str, float]) -> pd.DataFrame:
    """Each judge's position consistency on its 'all categories' rows."""
    return frame.assign(
        position_consistency=[
            consistency.get(j) if c == "all" else None
            for j, c in zip(frame["judge"], frame["category"], strict=True)
        ]
    )


def record_test_looks(
    conn: DuckDBPyConnection, looks: list[Look], run_id: str, log: Callable[[str], None]
) -> None:
    """Append this run's looks at the test split to calibration_test_uses (and log them)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for judge, rubric, version, since, forced, n in looks:
        conn.execute(
            f"INSERT INTO {CALIBRATION_TEST_USES} ({', '.join(CALIBRATION_TEST_USES.column_names)}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [judge, rubric, version, now, run_id, forced, n, since],
        )
        log(
            f"test split (items labelled since {since or 'the start'}) measured for {judge} "
            f"({rubric}@{version})" + (" (forced second look)" if forced else "")
        )


def test_split_status(conn: DuckDBPyConnection) -> pd.DataFrame:
    """Each judge's test-split measurement over all categories, and whether it is trusted."""
    return conn.execute(
        f"""SELECT judge, rubric, rubric_version, test_since, n, round(tpr, 3) AS tpr, round(tnr, 3) AS tnr,
                  round(kappa, 3) AS kappa, trusted, trust_status
           FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' ORDER BY judge"""
    ).df()


def test_split_used(conn: DuckDBPyConnection) -> set[tuple[str, str, str, date | None]]:
    """(judge, rubric, rubric_version, test_since) already measured on the test split."""
    return {
        tuple(r)
        for r in conn.execute(
            f"SELECT DISTINCT judge, rubric, rubric_version, test_since FROM {CALIBRATION_TEST_USES}"
        ).fetchall()
    }


def quarters_in_view(conn: DuckDBPyConnection) -> tuple[date | None, date | None]:
    """(newest labelled quarter of the gold test items, the traffic's latest quarter)."""
    return conn.execute(
        f"""SELECT (SELECT max(labelled_quarter) FROM {GOLD_LABELS} WHERE split = 'test'),
                  (SELECT date_trunc('quarter', max(partition_date))::DATE FROM {TRACES})"""
    ).fetchall()[0]


def corrected_rates(
    judged: pd.DataFrame, calib: pd.DataFrame, trust: dict[tuple[str, str, str], bool]
) -> list[tuple]:
    """Rows of corrected_pass_rates. `judged`: judge, rubric, rubric_version, app_version,
    passed; `calib`: the test split's judge, rubric, rubric_version, human_pass, judge_pass;
    `trust`: (judge, rubric, version) -> trusted, for the combinations measured on the test
    split. Anything else (a new judge model, an edited rubric) needs calibration."""
    rows = []
    for (judge, rubric, version, app), g in judged.groupby(
        ["judge", "rubric", "rubric_version", "app_version"]
    ):
        c = calib[
            (calib["judge"] == judge)
            & (calib["rubric"] == rubric)
            & (calib["rubric_version"] == version)
        ]
        key = (judge, rubric, version)
        uncorrectable, note = None, None
        if key in trust and len(c):
            rate = corrected_pass_rate(
                g["passed"].to_numpy(), c["human_pass"].to_numpy(), c["judge_pass"].to_numpy()
            )
            point, low, high = (None if math.isnan(v) else v for v in rate[:3])
            uncorrectable, note = rate.uncorrectable, rate.note or None
            status = "trusted" if trust[key] else "untrusted"
        else:
            point = low = high = None
            status = "needs_calibration"
        rows.append(
            (
                judge,
                rubric,
                version,
                app,
                len(g),
                float(g["passed"].mean()),
                point,
                low,
                high,
                trust.get(key),
                status,
                uncorrectable,
                note,
            )
        )
    return rows
