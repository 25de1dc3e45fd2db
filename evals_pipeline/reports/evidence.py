"""What the reports read from the warehouse: the scores per scorer, the judges' trust, the
traffic mix, and each release gate's evidence. Plain queries; the rules are in gates.py."""

from __future__ import annotations

from datetime import date

import pandas as pd
from duckdb import DuckDBPyConnection

from evals_pipeline.project import OnlineGatesSpec
from evals_pipeline.records import (
    ACTIVE_POOL,
    ASSERTION_RESULTS,
    CANARY_GATE,
    HOLDOUT_GAP,
    JUDGE_BIAS,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    SEGMENT_REPORT,
    SHADOW_GATE,
    SYNTHETIC_WHY,
    TRACES,
)
from evals_pipeline.reports.gates import (
    Gate,
    decision,
    holdout_gate,
    judge_trust_gate,
    layer1_gate,
    online_gate,
    pooled_gap,
    quorum_gate,
    segment_gates,
)

SCORES_SQL = f"""
SELECT s.case_id, s.app_version, p.category, p.user_segment, p.why, s.scorer, (s.verdict = 'pass')::DOUBLE AS score
FROM (
    SELECT case_id, app_version, 'ensemble' AS scorer, verdict FROM {JUDGE_ENSEMBLE} WHERE rubric = $rubric
    UNION ALL
    SELECT case_id, app_version, judge, verdict FROM {JUDGE_VERDICTS} WHERE rubric = $rubric
) s JOIN {ACTIVE_POOL} p USING (case_id)
WHERE s.verdict IS NOT NULL
"""

# Dimensional rubrics: each dimension's ensemble median (1-4) is reported as its own scorer.
DIMENSIONS_SQL = f"""
SELECT d.case_id, d.app_version, p.category, p.user_segment, p.why, 'ensemble:' || d.rubric || '/' || d.dim AS scorer, d.score
FROM (
    SELECT case_id, app_version, rubric, unnest(map_keys(scores::MAP(VARCHAR, DOUBLE))) AS dim,
           unnest(map_values(scores::MAP(VARCHAR, DOUBLE))) AS score
    FROM {JUDGE_ENSEMBLE} WHERE scores IS NOT NULL
) d JOIN {ACTIVE_POOL} p USING (case_id)
"""


def scores(conn: DuckDBPyConnection, rubric: str) -> pd.DataFrame:
    """Every scorer's scores on the active pool: the ensemble, each judge, each dimension."""
    binary = conn.execute(SCORES_SQL, {"rubric": rubric}).df()
    return pd.concat([binary, conn.execute(DIMENSIONS_SQL).df()], ignore_index=True)


JUDGE_TEST_SQL = f"""
SELECT DISTINCT v.judge, c.trusted, c.kappa FROM {JUDGE_VERDICTS} v LEFT JOIN {JUDGE_CALIBRATION} c
  ON c.judge = v.judge AND c.rubric = v.rubric AND c.rubric_version = v.rubric_version
 AND c.split = 'test' AND c.category = 'all'
WHERE v.rubric = ?
"""


def judge_trust(conn: DuckDBPyConnection, rubric: str) -> dict[str, bool | None]:
    """Scorer -> trusted. Only trusted judges vote in the ensemble, so it is trusted when it
    has any verdict at all (enough trusted judges for the quorum); None before it exists."""
    trust: dict[str, bool | None] = {
        j: t for j, t, _ in conn.execute(JUDGE_TEST_SQL, [rubric]).fetchall()
    }
    trust["ensemble"] = conn.execute(
        f"SELECT bool_or(status <> 'too_few_trusted') FROM {JUDGE_ENSEMBLE} WHERE rubric = ?",
        [rubric],
    ).fetchall()[0][0]
    return trust


def bias_notes(conn: DuckDBPyConnection, rubric: str) -> dict[str, str]:
    """Judge -> what `judge_bias` flags about it (length bias, self-preference risk)."""
    rows = conn.execute(
        f"""SELECT judge, coalesce(padded_biased, length_biased AND length_coef > 0), length_coef,
                  same_family_versions
            FROM {JUDGE_BIAS} WHERE rubric = ? OR rubric IS NULL""",
        [rubric],
    ).fetchall()
    notes = {}
    for judge, longer, coef, same in rows:
        found = (
            [f"passes longer outputs more often (length coefficient {coef:+.2f})"] if longer else []
        )
        found += [f"same model family as {same} (self-preference risk)"] if same else []
        if found:
            notes[judge] = ", ".join(found)
    return notes


def judge_kappas(conn: DuckDBPyConnection, rubric: str) -> dict[str, float | None]:
    """Judge -> Cohen's kappa against the expert on its test split (None: not measured)."""
    return {j: k for j, _, k in conn.execute(JUDGE_TEST_SQL, [rubric]).fetchall()}


def traffic_share(conn: DuckDBPyConnection) -> dict[str, float]:
    """Each category's share of production traffic."""
    rows = conn.execute(f"SELECT category, count(*) FROM {TRACES} GROUP BY 1").fetchall()
    total = sum(n for _, n in rows) or 1
    return {c: n / total for c, n in rows}


def judged_versions(conn: DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT app_version FROM {JUDGE_ENSEMBLE} ORDER BY 1"
        ).fetchall()
    ]


def holdout_gap_evidence(
    conn: DuckDBPyConnection, candidate: str
) -> tuple[date | None, list[tuple], tuple[float, float] | None]:
    """The latest rotation's active-holdout gap of the candidate as the trusted panel judged
    it (per category), and the production outputs' token-F1 gap (gap, half-width) as a
    sanity figure."""
    quarter: date | None = conn.execute(f"SELECT max(quarter) FROM {HOLDOUT_GAP}").fetchall()[0][0]
    panel = conn.execute(
        f"""SELECT active_n, active_score, active_std_error, holdout_n, holdout_score, holdout_std_error
           FROM {HOLDOUT_GAP} WHERE quarter = ? AND starts_with(evaluator, 'panel:') AND app_version = ?
           ORDER BY category""",
        [quarter, candidate],
    ).fetchall()
    token = conn.execute(
        f"""SELECT active_n, active_score, active_std_error, holdout_n, holdout_score, holdout_std_error
           FROM {HOLDOUT_GAP} WHERE quarter = ? AND evaluator = 'reference_token_f1' ORDER BY category""",
        [quarter],
    ).fetchall()
    return quarter, panel, pooled_gap(token) if token else None


def release_gate_rows(
    conn: DuckDBPyConnection,
    candidate: str,
    baseline: str,
    rubric: str,
    max_regression: float,
    flag_se: float,
    max_no_verdict: float,
    online: OnlineGatesSpec | None = None,
) -> list[Gate]:
    """Every gate on its evidence, then the decision (last)."""
    online = online or OnlineGatesSpec()
    layer1 = conn.execute(
        f"""SELECT assertion, count(*) FILTER (WHERE NOT passed) AS failed, count(*) AS checked
           FROM {ASSERTION_RESULTS} WHERE subject = 'candidate' AND app_version = ? GROUP BY 1 HAVING failed > 0 ORDER BY 1""",
        [candidate],
    ).fetchall()
    cells = conn.execute(
        f"""SELECT level, category, user_segment, round(delta_vs_baseline, 3), round(delta_ci_low, 3), round(delta_ci_high, 3), regressed, flagged
           FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND app_version = ? AND level IN ('category', 'cell') ORDER BY delta_vs_baseline""",
        [candidate],
    ).fetchall()
    quarter, panel_rows, sanity = holdout_gap_evidence(conn, candidate)
    # Outputs the ensemble could not decide (too few judges answered, or a tied vote), among
    # the traffic's cases (the rates and gates leave synthetic cases out).
    missing, total = conn.execute(
        f"""SELECT count(*) FILTER (WHERE e.verdict IS NULL), count(*)
           FROM {JUDGE_ENSEMBLE} e JOIN {ACTIVE_POOL} p ON p.case_id = e.case_id
           WHERE e.rubric = ? AND e.app_version IN (?, ?) AND p.why <> '{SYNTHETIC_WHY}'""",
        [rubric, candidate, baseline],
    ).fetchall()[0]
    gates = [
        layer1_gate(layer1),
        *segment_gates(cells, max_regression, flag_se),
        holdout_gate(quarter, panel_rows, max_regression, candidate, sanity),
        judge_trust_gate(
            judge_trust(conn, rubric), judge_kappas(conn, rubric), bias_notes(conn, rubric)
        ),
        quorum_gate(missing, total, max_no_verdict, candidate, baseline),
        *online_gates(conn, online, candidate, baseline),
    ]
    return [*gates, decision(gates, candidate, baseline)]


def online_gates(
    conn: DuckDBPyConnection, online: OnlineGatesSpec, candidate: str, baseline: str
) -> list[Gate]:
    """The shadow and canary gates from their tables (rows of this candidate and control)."""
    shadow = conn.execute(
        f"""SELECT CASE level WHEN 'all' THEN 'all inputs' ELSE category END AS label, *
           FROM {SHADOW_GATE} WHERE candidate = ? AND control = ?""",
        [candidate, baseline],
    ).df()
    canary = conn.execute(
        f"""SELECT CASE level WHEN 'all' THEN 'all users' ELSE segment END || ' ' || signal AS label, *
           FROM {CANARY_GATE} WHERE candidate = ? AND control = ?""",
        [candidate, baseline],
    ).df()
    incomplete = ""
    if online.canary is not None and len(canary):
        seen, planned = int(canary["days_observed"].max()), int(canary["days_planned"].max())
        incomplete = f"monitoring day {seen} of {planned}" if seen < planned else ""
    # The shadow period is still running while the traffic so far ends before its end.
    last = conn.execute(f"SELECT max(ts) FROM {TRACES}").fetchall()[0][0]
    running = bool(len(shadow)) and last is not None and last < shadow["window_end"].max()
    return [
        online_gate(
            "shadow",
            None if online.shadow is None else shadow,
            online.shadow.max_drop if online.shadow else 0.0,
            f"shadow period running (traffic up to {last:%Y-%m-%d %H:%M})" if running else "",
        ),
        online_gate(
            "canary",
            None if online.canary is None else canary,
            online.canary.max_drop if online.canary else 0.0,
            incomplete,
        ),
    ]
