"""Dagster wiring of the reports: segment report, release gates, quality/cost/latency and the
offline-online correlation alarm. They read the active pool's verdicts and calibration;
none of them can reach the holdout store."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.partitions import quarter_window, quarterly_partitions
from evals_pipeline.paths import data_dir
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ACTIVE_EVALUATION,
    ASSERTION_RESULTS,
    CALIBRATION_VERDICTS,
    CANDIDATE_OUTPUTS,
    HOLDOUT_EVALUATION,
    HOLDOUT_GAP,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    ONLINE_OFFLINE_CORRELATION,
    QUALITY_COST_LATENCY,
    RELEASE_GATES,
    SEGMENT_REPORT,
)
from evals_pipeline.reports.correlation import CELL_ONLINE_SQL, PER_TRACE_SQL, correlate
from evals_pipeline.reports.gates import (
    decision,
    holdout_gate,
    judge_trust_gate,
    layer1_gate,
    quorum_gate,
    segment_gates,
)
from evals_pipeline.reports.html import render_report
from evals_pipeline.reports.segments import paired_cells, post_stratified, segment_verdicts
from evals_pipeline.warehouse import Warehouse, ensure_tables, registered, replace_table


class ReportConfig(Config):
    baseline: str = Field(
        default="",
        description="Override: baseline app version; empty = the project file's role: baseline "
        "(else the second newest).",
    )
    candidate: str = Field(
        default="",
        description="Override: version considered for release; empty = role: candidate (else the newest).",
    )
    rubric: str = Field(
        default="", description="Override: binary rubric reported; empty = judges.rubric."
    )
    max_regression: float = Field(
        default=0.03, description="A segment may not get worse by more than this (significantly)."
    )
    flag_se: float = Field(
        default=2.0, description="Changes larger than this many standard errors are flagged."
    )
    max_no_verdict: float = Field(
        default=0.05,
        description="Share of judged outputs without an ensemble verdict (no quorum) above which "
        "the ensemble_quorum gate fails: the rates would stand on a partial set.",
    )


SCORES_SQL = """
SELECT s.case_id, s.app_version, p.category, p.user_segment, s.scorer, (s.verdict = 'pass')::DOUBLE AS score
FROM (
    SELECT case_id, app_version, 'ensemble' AS scorer, verdict FROM judge_ensemble WHERE rubric = $rubric
    UNION ALL
    SELECT case_id, app_version, judge, verdict FROM judge_verdicts WHERE rubric = $rubric
) s JOIN active_pool p USING (case_id)
WHERE s.verdict IS NOT NULL
"""


DIMENSIONS_SQL = """
SELECT d.case_id, d.app_version, p.category, p.user_segment, 'ensemble:' || d.rubric || '/' || d.dim AS scorer, d.score
FROM (
    SELECT case_id, app_version, rubric, unnest(map_keys(scores::MAP(VARCHAR, DOUBLE))) AS dim,
           unnest(map_values(scores::MAP(VARCHAR, DOUBLE))) AS score
    FROM judge_ensemble WHERE scores IS NOT NULL
) d JOIN active_pool p USING (case_id)
"""


def _trust(conn, rubric: str) -> dict[str, bool | None]:
    """Scorer -> trusted (the ensemble is trusted when every one of its judges is)."""
    ensure_tables(conn, [JUDGE_CALIBRATION, JUDGE_VERDICTS])
    rows = conn.execute(
        """SELECT DISTINCT v.judge, c.trusted FROM judge_verdicts v LEFT JOIN judge_calibration c
           ON c.judge = v.judge AND c.rubric = v.rubric AND c.rubric_version = v.rubric_version
              AND c.split = 'test' AND c.category = 'all'
           WHERE v.rubric = ?""",
        [rubric],
    ).fetchall()
    trust: dict[str, bool | None] = {j: t for j, t in rows}
    values = list(trust.values())
    trust["ensemble"] = None if not values or any(v is None for v in values) else all(values)
    return trust


def _resolved(config: ReportConfig, project: ProjectResource) -> ReportConfig:
    """The run's settings: op config where set, else the project file's roles and rubric."""
    p = project.config()
    return config.model_copy(
        update={
            "baseline": config.baseline or p.version("baseline"),
            "candidate": config.candidate or p.version("candidate"),
            "rubric": config.rubric or p.judges.rubric,
        }
    )


def _versions(conn, config: ReportConfig) -> tuple[str, str]:
    versions = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT app_version FROM judge_ensemble ORDER BY 1"
        ).fetchall()
    ]
    if not versions:
        raise ValueError("no judged app versions yet: run the quarterly job first")
    candidate = config.candidate or versions[-1]
    baseline = config.baseline or (versions[-2] if len(versions) > 1 else versions[-1])
    return baseline, candidate


def traffic_share(conn) -> dict[str, float]:
    rows = conn.execute("SELECT category, count(*) FROM traces GROUP BY 1").fetchall()
    total = sum(n for _, n in rows) or 1
    return {c: n / total for c, n in rows}


@asset(
    group_name="reports",
    kinds={"duckdb"},
    deps=["judge_ensemble", "judge_verdicts", "judge_calibration", "golden_pools", "traces"],
)
def segment_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> MaterializeResult:
    """Pass rate per app version x category x user segment, per category, and overall
    (re-weighted to the traffic mix), with paired deltas vs the baseline version and their
    CIs. Every figure names its scorer (the ensemble or one judge) and whether it is trusted."""
    config = _resolved(config, project)
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [SEGMENT_REPORT, JUDGE_ENSEMBLE])
        baseline, _ = _versions(conn, config)
        scores = conn.execute(SCORES_SQL, {"rubric": config.rubric}).df()
        # Dimensional rubrics: each dimension's ensemble median (1-4) is reported as its own scorer.
        dims = conn.execute(DIMENSIONS_SQL).df()
        scores = pd.concat([scores, dims], ignore_index=True)
        trust = _trust(conn, config.rubric)
        share = traffic_share(conn)
        frames = []
        for scorer, g in scores.groupby("scorer"):
            for level, by in (("cell", ["category", "user_segment"]), ("category", ["category"])):
                cells = segment_verdicts(
                    paired_cells(g, baseline, by), config.max_regression, config.flag_se
                )
                cells["level"] = level
                frames.append(cells.assign(scorer=scorer))
            overall = post_stratified(frames[-1], share)
            overall["ci_low"] = overall["score"] - 1.96 * overall["std_error"]
            overall["ci_high"] = overall["score"] + 1.96 * overall["std_error"]
            overall["delta_ci_low"] = (
                overall["delta_vs_baseline"] - 1.96 * overall["delta_std_error"]
            )
            overall["delta_ci_high"] = (
                overall["delta_vs_baseline"] + 1.96 * overall["delta_std_error"]
            )
            overall["n"] = (
                g.groupby("app_version").size().reindex(overall["app_version"]).to_numpy()
            )
            frames.append(
                overall.assign(
                    scorer=scorer, level="overall", category="all", flagged=None, regressed=None
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        frame["user_segment"] = frame.get("user_segment", pd.Series(dtype=object)).fillna("all")
        frame["baseline"] = baseline
        frame["trusted"] = frame["scorer"].map(trust)
        replace_table(conn, SEGMENT_REPORT, frame[SEGMENT_REPORT.column_names])
        headline = conn.execute(
            """SELECT app_version, level, category, n, round(score, 3) AS score, round(delta_vs_baseline, 3) AS delta,
                      round(delta_ci_low, 3) AS delta_low, round(delta_ci_high, 3) AS delta_high, regressed, trusted
               FROM segment_report WHERE scorer = 'ensemble' AND level IN ('overall', 'category') ORDER BY app_version, level DESC, category"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(
                    conn,
                    "segment_report",
                    preview_where="scorer = 'ensemble' AND level = 'overall'",
                ),
                "baseline": MetadataValue.text(baseline),
                "ensemble_by_category": MetadataValue.md(markdown_table(headline)),
            }
        )


@asset(
    group_name="reports",
    kinds={"duckdb"},
    deps=["segment_report", "assertion_results", "judge_calibration", "holdout_gap"],
)
def release_gates(
    context: AssetExecutionContext,
    config: ReportConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> MaterializeResult:
    """The upgrade decision as data: Layer 1 at 100%, no significant segment regression
    beyond 3 points, large changes flagged, the holdout check, judges trusted; each gate
    pass/fail with its evidence, and the decision."""
    config = _resolved(config, project)
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [RELEASE_GATES, ASSERTION_RESULTS, SEGMENT_REPORT, HOLDOUT_GAP])
        baseline, candidate = _versions(conn, config)
        layer1 = conn.execute(
            """SELECT assertion, count(*) FILTER (WHERE NOT passed) AS failed, count(*) AS checked
               FROM assertion_results WHERE subject = 'candidate' AND app_version = ? GROUP BY 1 HAVING failed > 0 ORDER BY 1""",
            [candidate],
        ).fetchall()
        cells = conn.execute(
            """SELECT level, category, user_segment, round(delta_vs_baseline, 3), round(delta_ci_low, 3), round(delta_ci_high, 3), regressed, flagged
               FROM segment_report WHERE scorer = 'ensemble' AND app_version = ? AND level IN ('category', 'cell') ORDER BY delta_vs_baseline""",
            [candidate],
        ).fetchall()
        quarter = conn.execute("SELECT max(quarter) FROM holdout_gap").fetchall()[0][0]
        gap_rows = conn.execute(
            """SELECT active_n, active_score, active_std_error, holdout_n, holdout_score, holdout_std_error
               FROM holdout_gap WHERE quarter = ? ORDER BY category""",
            [quarter],
        ).fetchall()
        # Outputs the ensemble could not decide (too few judges answered, or a tied vote).
        missing, total = conn.execute(
            """SELECT count(*) FILTER (WHERE e.verdict IS NULL), count(*)
               FROM judge_ensemble e JOIN active_pool p ON p.case_id = e.case_id
               WHERE e.rubric = ? AND e.app_version IN (?, ?)""",
            [config.rubric, candidate, baseline],
        ).fetchall()[0]
        gates = [
            layer1_gate(layer1),
            *segment_gates(cells, config.max_regression, config.flag_se),
            holdout_gate(quarter, gap_rows, config.max_regression),
            judge_trust_gate(_trust(conn, config.rubric)),
            quorum_gate(missing, total, config.max_no_verdict, candidate, baseline),
        ]
        gates.append(decision(gates, candidate, baseline))
        decided = gates[-1][1]
        frame = pd.DataFrame(
            [(candidate, baseline, *g) for g in gates], columns=RELEASE_GATES.column_names
        )
        replace_table(conn, RELEASE_GATES, frame)
        return MaterializeResult(
            metadata={
                "decision": MetadataValue.text(decided),
                "gates": MetadataValue.md(markdown_table(frame)),
            }
        )


@asset(
    group_name="reports", kinds={"duckdb"}, deps=["segment_report", "candidate_outputs", "traces"]
)
def quality_cost_latency(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Quality, cost and latency per app version side by side: a decision on the curve."""
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [QUALITY_COST_LATENCY, CANDIDATE_OUTPUTS, SEGMENT_REPORT])
        conn.execute(
            """CREATE OR REPLACE TEMP TABLE _qcl AS
            SELECT q.app_version, q.score AS pass_rate, q.ci_low AS pass_rate_ci_low, q.ci_high AS pass_rate_ci_high,
                   c.cost, c.latency, t.cost_per_trace, t.p50, t.p95, t.n
            FROM (SELECT * FROM segment_report WHERE scorer = 'ensemble' AND level = 'overall') q
            LEFT JOIN (SELECT app_version, avg(cost_usd) AS cost, avg(latency_ms) AS latency FROM candidate_outputs GROUP BY 1) c USING (app_version)
            LEFT JOIN (SELECT app_version, avg(cost_usd) AS cost_per_trace, quantile_cont(latency_ms, 0.5) AS p50,
                              quantile_cont(latency_ms, 0.95) AS p95, count(*) AS n FROM traces GROUP BY 1) t USING (app_version)
            ORDER BY 1"""
        )
        frame = conn.execute("SELECT * FROM _qcl").df()
        frame.columns = QUALITY_COST_LATENCY.column_names
        replace_table(conn, QUALITY_COST_LATENCY, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "quality_cost_latency"),
                "table": MetadataValue.md(markdown_table(frame.round(5))),
            }
        )


SIGNALS = ("thumbs_up_rate", "task_completed", "escalation", "follow_up", "session_continued")


@asset(
    group_name="reports",
    kinds={"duckdb"},
    deps=["calibration_verdicts", "trace_feedback", "traces", "judge_calibration"],
    partitions_def=quarterly_partitions,
    check_specs=[
        AssetCheckSpec(
            "offline_predicts_online",
            asset="online_offline_correlation",
            description="The trusted judges' per-cell Spearman correlation with the thumbs-up rate is at least 0.6.",
        )
    ],
)
def online_offline_correlation(
    context: AssetExecutionContext, warehouse: Warehouse
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Do offline scores still predict what users do? Per quarter, each judge's verdicts on
    the quarter's labelled production traces against online signals, per (app version x user
    segment) cell and per trace: Pearson and Spearman with bootstrap 95% intervals."""
    start, end = quarter_window(context)
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [ONLINE_OFFLINE_CORRELATION, CALIBRATION_VERDICTS])
        per_trace = conn.execute(PER_TRACE_SQL, {"start": start, "end": end}).df()
        online_cells = (
            conn.execute(CELL_ONLINE_SQL, {"start": start, "end": end})
            .df()
            .set_index(["app_version", "user_segment"])
        )
        trust = _trust(conn, "pass_fail")
        rows = []
        for judge, g in per_trace.groupby("judge"):
            # A cell's offline score comes from its judged (labelled) traces; its online
            # signals from all of the cell's traffic that quarter, which is far less noisy.
            cells = g.groupby(["app_version", "user_segment"]).agg(
                offline=("offline", "mean"), n=("offline", "size")
            )
            cells = cells[cells["n"] >= 5].join(online_cells, how="inner")
            for signal in SIGNALS:
                c = correlate(cells["offline"].to_numpy(), cells[signal].to_numpy(), n_boot=500)
                rows.append(
                    (
                        start,
                        judge,
                        trust.get(judge),
                        "cell",
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
                t = correlate(g["offline"].to_numpy(), g[signal].to_numpy(), n_boot=200)
                rows.append(
                    (
                        start,
                        judge,
                        trust.get(judge),
                        "trace",
                        signal,
                        t.n,
                        t.pearson,
                        t.pearson_low,
                        t.pearson_high,
                        t.spearman,
                        t.spearman_low,
                        t.spearman_high,
                    )
                )
        frame = pd.DataFrame(rows, columns=ONLINE_OFFLINE_CORRELATION.column_names)
        conn.execute("DELETE FROM online_offline_correlation WHERE quarter = ?", [start])
        with registered(conn, _corr=frame):
            conn.execute("INSERT INTO online_offline_correlation SELECT * FROM _corr")
        main = frame[(frame["level"] == "cell") & (frame["signal"] == "thumbs_up_rate")]
        yield MaterializeResult(
            metadata={
                **table_metadata(conn, "online_offline_correlation", "quarter = ?", [start]),
                "thumbs_up_by_cell": MetadataValue.md(
                    markdown_table(main[["judge", "trusted", "n", "pearson", "spearman"]].round(3))
                ),
            }
        )
    trusted_main = main[main["trusted"].astype(bool)]
    low = trusted_main[~(trusted_main["spearman"] >= 0.6)]
    yield AssetCheckResult(
        check_name="offline_predicts_online",
        passed=not trusted_main.empty and low.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "below_0.6": MetadataValue.json(low["judge"].tolist()),
            "trusted_judges": MetadataValue.int(len(trusted_main)),
        },
    )


@asset(group_name="reports", kinds={"duckdb"}, deps=["holdout_evaluation", "active_evaluation"])
def holdout_gap(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Active minus holdout score per rotation and category, with a 95% interval: how much
    better the set the team iterates on looks than the sealed one (eval-set overfitting)."""
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [HOLDOUT_GAP, HOLDOUT_EVALUATION, ACTIVE_EVALUATION])
        frame = conn.execute(
            """SELECT a.quarter, a.evaluator, a.category, a.n AS active_n, a.mean_score AS active_score,
                      h.n AS holdout_n, h.mean_score AS holdout_score, a.mean_score - h.mean_score AS gap,
                      a.mean_score - h.mean_score - 1.96 * sqrt(coalesce(a.std_error, 0) ^ 2 + coalesce(h.std_error, 0) ^ 2) AS gap_ci_low,
                      a.mean_score - h.mean_score + 1.96 * sqrt(coalesce(a.std_error, 0) ^ 2 + coalesce(h.std_error, 0) ^ 2) AS gap_ci_high,
                      a.std_error AS active_std_error, h.std_error AS holdout_std_error
               FROM active_evaluation a JOIN holdout_evaluation h USING (quarter, evaluator, category)
               ORDER BY 1, 3"""
        ).df()
        replace_table(conn, HOLDOUT_GAP, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "holdout_gap"),
                "gaps": MetadataValue.md(markdown_table(frame.round(3))),
            }
        )


@asset(
    group_name="reports",
    kinds={"html"},
    deps=[
        "segment_report",
        "release_gates",
        "quality_cost_latency",
        "online_offline_correlation",
        "holdout_gap",
        "pool_sizes",
        "judge_calibration",
        "failure_mode_distribution",
    ],
)
def html_report(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """One self-contained HTML page per run under data/reports/ (and latest.html): release
    gates, quality/cost/latency, segment deltas with CIs, judge calibration, offline-online
    correlation, pool sizes and the failure modes (error analysis), with plots."""
    folder = data_dir() / "reports"
    with warehouse.get_connection() as conn:
        path = render_report(conn, folder, context.run_id)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "latest": MetadataValue.path(str(folder / "latest.html")),
        }
    )
