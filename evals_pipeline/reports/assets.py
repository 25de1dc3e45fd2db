"""Dagster wiring of the reports: segment report, release gates, quality/cost/latency, the
holdout gap and the offline-online correlation alarm. They read the active pool's verdicts
and calibration; none of them can reach the holdout store."""

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
    multi_asset,
)
from dagster_pyspark import LazyPySparkResource
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.calibration.evidence import evidence_dir, files_state, load_evidence
from evals_pipeline.judging.client import JudgeClient
from evals_pipeline.metadata import (
    evidence_results,
    markdown_table,
    replaced_with,
    table_metadata,
)
from evals_pipeline.partitions import quarter_window, quarterly_partitions
from evals_pipeline.paths import data_dir
from evals_pipeline.pools.references import ReferenceSource
from evals_pipeline.project import DriftSpec, ProjectResource
from evals_pipeline.records import (
    ACTIVE_EVALUATION,
    ACTIVE_POOL,
    ASSERTION_RESULTS,
    CALIBRATION_VERDICTS,
    CANARY_GATE,
    CANDIDATE_OUTPUTS,
    CORRECTED_PASS_RATES,
    EVIDENCE_CORRELATION,
    EXTERNAL_VERDICTS,
    FAILURE_MODE_DISTRIBUTION,
    GOLD_LABELS,
    HISTORY_TABLES,
    HOLDOUT_EVALUATION,
    HOLDOUT_GAP,
    HOLDOUT_PANEL_EVALUATION,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    ONLINE_METRICS,
    ONLINE_OFFLINE_CORRELATION,
    PAIRWISE_VERDICTS,
    POOL_SIZES,
    PREFERENCE_RATINGS,
    QUALITY_COST_LATENCY,
    QUARANTINED_ONLINE_METRICS,
    RELEASE_GATES,
    SEGMENT_REPORT,
    SHADOW_GATE,
    TRACE_FEEDBACK,
    TRACES,
    VISIBLE_TRACES,
)
from evals_pipeline.reports.correlation import (
    ALARM_BELOW,
    CELL_ONLINE_SQL,
    OFFLINE_SCORES_SQL,
    ONLINE_SCORES_SQL,
    PER_TRACE_SQL,
    correlation_alarm,
    correlation_rows,
    evidence_correlation_rows,
    offline_outruns_online,
)
from evals_pipeline.reports.evidence import (
    judge_trust,
    judged_versions,
    release_gate_rows,
    scores,
    traffic_share,
)
from evals_pipeline.reports.html import render_report
from evals_pipeline.reports.online import monthly_query, online_query, per_trace_query
from evals_pipeline.reports.online_gates import canary_frame, shadow_evidence
from evals_pipeline.reports.online_metrics import online_metrics_format
from evals_pipeline.reports.pareto import (
    frame_axes,
    markdown_image,
    pareto_plot_png,
    with_frontier,
)
from evals_pipeline.reports.preferences import PAIRWISE_OUTCOMES_SQL, preference_rows
from evals_pipeline.reports.segments import segment_frame
from evals_pipeline.spark_lake import spark_engine
from evals_pipeline.specs import deps_of, table_asset, table_spec
from evals_pipeline.sql import load_sql
from evals_pipeline.warehouse import (
    Warehouse,
    registered,
    replace_table,
    transaction,
)


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


def _versions(conn: DuckDBPyConnection, config: ReportConfig) -> tuple[str, str]:
    """(baseline, candidate): as configured, else the two newest judged versions."""
    versions = judged_versions(conn)
    if not versions:
        raise ValueError("no judged app versions yet: run the quarterly job first")
    candidate = config.candidate or versions[-1]
    baseline = config.baseline or (versions[-2] if len(versions) > 1 else versions[-1])
    return baseline, candidate


@table_asset(
    SEGMENT_REPORT,
    group="reports",
    reads=[JUDGE_ENSEMBLE, JUDGE_VERDICTS, JUDGE_CALIBRATION, ACTIVE_POOL, TRACES],
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
        baseline, _ = _versions(conn, config)
        frame = segment_frame(
            scores(conn, config.rubric),
            baseline,
            traffic_share(conn),
            config.max_regression,
            config.flag_se,
        )
        frame["trusted"] = frame["scorer"].map(judge_trust(conn, config.rubric))
        replace_table(conn, SEGMENT_REPORT, frame[SEGMENT_REPORT.column_names])
        headline = conn.execute(
            f"""SELECT app_version, level, category, n, round(score, 3) AS score, round(delta_vs_baseline, 3) AS delta,
                      round(delta_ci_low, 3) AS delta_low, round(delta_ci_high, 3) AS delta_high, regressed, trusted
               FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND level IN ('overall', 'category') ORDER BY app_version, level DESC, category"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(
                    conn,
                    SEGMENT_REPORT,
                    preview_where="scorer = 'ensemble' AND level = 'overall'",
                ),
                "baseline": MetadataValue.text(baseline),
                "ensemble_by_category": MetadataValue.md(markdown_table(headline)),
            }
        )


@table_asset(
    RELEASE_GATES,
    group="reports",
    reads=[
        SEGMENT_REPORT,
        ASSERTION_RESULTS,
        JUDGE_CALIBRATION,
        HOLDOUT_GAP,
        JUDGE_ENSEMBLE,
        SHADOW_GATE,
        CANARY_GATE,
    ],
)
def release_gates(
    context: AssetExecutionContext,
    config: ReportConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> MaterializeResult:
    """The upgrade decision as data: Layer 1 at 100%, no significant segment regression
    beyond 3 points, large changes flagged, the holdout check, judges trusted, the shadow
    period and the canary (seed 003's online gates); each gate pass/fail with its evidence,
    and the decision."""
    config = _resolved(config, project)
    with warehouse.get_connection() as conn:
        baseline, candidate = _versions(conn, config)
        gates = release_gate_rows(
            conn,
            candidate,
            baseline,
            config.rubric,
            config.max_regression,
            config.flag_se,
            config.max_no_verdict,
            project.config().online_gates,
        )
        frame = pd.DataFrame(
            [(candidate, baseline, *g) for g in gates], columns=RELEASE_GATES.column_names
        )
        replace_table(conn, RELEASE_GATES, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, RELEASE_GATES),
                "decision": MetadataValue.text(gates[-1][1]),
                "gates": MetadataValue.md(markdown_table(frame)),
            }
        )


@table_asset(
    SHADOW_GATE,
    group="online_gates",
    reads=[VISIBLE_TRACES, JUDGE_CALIBRATION],
    kinds=("duckdb", "litellm"),
)
def shadow_gate(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> MaterializeResult:
    """Shadow period (seed 003: 48 hours, within 5%): the candidate answers the control's live
    inputs of the period (users saw the control's answers); the trusted judges judge both
    answers to each input; paired pass rates per category with 95% intervals. Fails where the
    candidate is significantly worse by more than online_gates.shadow.max_drop."""
    with warehouse.get_connection() as conn:
        reference_source.load(conn)
        frame, stats = shadow_evidence(
            conn, judge_client, project.config(), context.log.info, context.run_id
        )
        calls = {"candidate_calls": MetadataValue.json(vars(stats))} if stats else {}
        return replaced_with(conn, SHADOW_GATE, frame, "rows", extra=calls)


@table_asset(CANARY_GATE, group="online_gates", reads=[TRACES, TRACE_FEEDBACK])
def canary_gate(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> MaterializeResult:
    """Canary (seed 003: 5% of users, within 2%, 7 days of monitoring): each gated online
    signal's rate for the users served the candidate against the users served the control,
    over the window so far, overall and per category and user segment, with 95% intervals
    (users as clusters). Fails where the canary is significantly worse by more than
    online_gates.canary.max_drop."""
    p = project.config()
    spec = p.online_gates.canary
    with warehouse.get_connection() as conn:
        frame = pd.DataFrame(columns=CANARY_GATE.column_names)
        last_day = conn.execute(f"SELECT max(ts)::DATE FROM {TRACES}").fetchall()[0][0]
        if spec is not None and last_day is not None:
            frame = canary_frame(
                conn,
                spec,
                p.version("candidate"),
                p.version("baseline"),
                last_day,
                p.online_gates.alpha,
            ).assign(candidate=p.version("candidate"), control=p.version("baseline"))
            context.log.info(f"canary window: day {frame['days_observed'].max()} of {spec.days}")
        return replaced_with(
            conn,
            CANARY_GATE,
            frame[CANARY_GATE.column_names],
            "rows",
            shown=frame[frame["level"] == "all"][
                ["signal", "canary_n", "control_n", "delta", "ci_low", "ci_high", "status"]
            ],
        )


@table_asset(
    QUALITY_COST_LATENCY, group="reports", reads=[SEGMENT_REPORT, CANDIDATE_OUTPUTS, TRACES]
)
def quality_cost_latency(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Quality, cost and latency per app version side by side, with the Pareto frontier
    flagged (no version better on every axis) and plotted: a decision on the curve
    (model: reports/sql/quality_cost_latency.sql)."""
    with warehouse.get_connection() as conn:
        frame = with_frontier(conn.execute(load_sql(__file__, "quality_cost_latency")).df())
        plot = pareto_plot_png(frame_axes(frame).assign(pareto_optimal=frame["pareto_optimal"]))
        return replaced_with(
            conn,
            QUALITY_COST_LATENCY,
            frame[QUALITY_COST_LATENCY.column_names],
            "table",
            decimals=5,
            extra={"frontier": MetadataValue.md(markdown_image(plot, "quality-cost frontier"))},
        )


@table_asset(
    ONLINE_OFFLINE_CORRELATION,
    group="reports",
    reads=[CALIBRATION_VERDICTS, TRACE_FEEDBACK, TRACES, JUDGE_CALIBRATION],
    partitions_def=quarterly_partitions,
    check_specs=[
        AssetCheckSpec(
            "offline_predicts_online",
            asset=ONLINE_OFFLINE_CORRELATION.name,
            description=f"The trusted judges' per-cell Spearman correlation with the thumbs-up rate is at least {ALARM_BELOW}.",
        ),
        AssetCheckSpec(
            "offline_tracks_online",
            asset=ONLINE_OFFLINE_CORRELATION.name,
            description="Drift alarm (seed 003): the trusted judges' monthly pass rate on production "
            "traces did not rise month after month (drift.offline_rise_months, by drift.min_offline_rise) "
            "while the thumbs-up rate stayed flat (within drift.max_online_change). Warns otherwise.",
        ),
    ],
)
def online_offline_correlation(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    project: ProjectResource,
    pyspark: LazyPySparkResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Do offline scores still predict what users do? Per quarter, each judge's verdicts on
    the quarter's labelled production traces against online signals, per (app version x user
    segment) cell and per trace: Pearson and Spearman with bootstrap 95% intervals. The
    online signals over all traffic are aggregated where it lives (Spark with engine spark)."""
    start, end = quarter_window(context)
    window = {"start": start, "end": end}
    with warehouse.get_connection() as conn:
        spark = spark_engine(project.config(), conn, pyspark)
        per_trace = per_trace_query(conn, spark, PER_TRACE_SQL, window)
        online_cells = online_query(conn, spark, CELL_ONLINE_SQL, window)
        trust = judge_trust(conn, project.config().judges.rubric)
        trusted_judges = [j for j, t in trust.items() if t and j != "ensemble"]
        monthly = monthly_query(conn, spark, trusted_judges, end)
        rows = correlation_rows(
            per_trace, online_cells.set_index(["app_version", "user_segment"]), trust, start
        )
        frame = pd.DataFrame(rows, columns=ONLINE_OFFLINE_CORRELATION.column_names)
        with registered(conn, _corr=frame), transaction(conn):
            conn.execute(f"DELETE FROM {ONLINE_OFFLINE_CORRELATION} WHERE quarter = ?", [start])
            conn.execute(f"INSERT INTO {ONLINE_OFFLINE_CORRELATION} SELECT * FROM _corr")
        main = frame[(frame["level"] == "cell") & (frame["signal"] == "thumbs_up_rate")]
        yield MaterializeResult(
            metadata={
                **table_metadata(conn, ONLINE_OFFLINE_CORRELATION, "quarter = ?", [start]),
                "thumbs_up_by_cell": MetadataValue.md(
                    markdown_table(main[["judge", "trusted", "n", "pearson", "spearman"]].round(3))
                ),
            }
        )
    yield goodhart_check(monthly, project.config().drift)
    passed, low, trusted = correlation_alarm(frame)
    yield AssetCheckResult(
        check_name="offline_predicts_online",
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            f"below_{ALARM_BELOW}": MetadataValue.json(low),
            "trusted_judges": MetadataValue.int(trusted),
        },
    )


@multi_asset(
    name="online_metric_files",
    specs=[
        table_spec(
            ONLINE_METRICS,
            group="reports",
            how="Rebuilt from every metrics file (JSONL or CSV) in data/online_metrics/.",
        ),
        table_spec(QUARANTINED_ONLINE_METRICS, group="reports"),
    ],
)
def online_metric_files(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> Iterator[MaterializeResult]:
    """Rebuild online_metrics from every file in data/online_metrics/: per system (or system x
    segment cell) and date, online metrics users produced and offline scores other tools
    gave, long or wide; bad rows quarantined with their reason."""
    fmt = online_metrics_format(project.config().evidence.segment_by)
    folder = evidence_dir("online_metrics")
    state = files_state(folder)
    with warehouse.get_connection() as conn:
        counts = load_evidence(conn, fmt, folder)
        context.log.info(f"online metrics: {counts}")
        metrics = conn.execute(
            f"""SELECT kind, metric, count(DISTINCT system) AS systems, count(DISTINCT segment) AS segments,
                      min(date) AS first_date, max(date) AS last_date, count(*) AS values
               FROM {ONLINE_METRICS} GROUP BY ALL ORDER BY ALL"""
        ).df()
        yield from evidence_results(
            conn, ONLINE_METRICS, QUARANTINED_ONLINE_METRICS, counts, state, {"metrics": metrics}
        )


@table_asset(
    PREFERENCE_RATINGS,
    group="reports",
    reads=[GOLD_LABELS, EXTERNAL_VERDICTS, PAIRWISE_VERDICTS],
)
def preference_ratings(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> MaterializeResult:
    """Bradley-Terry ratings of systems from each kind of pairwise evidence on its own (gold
    human preferences, each imported pairwise judge, each of our pairwise judges), over all
    items and per segment, with bootstrap 95% intervals over items and the rank."""
    min_items = project.config().evidence.min_segment_items
    with warehouse.get_connection() as conn:
        outcomes = conn.execute(PAIRWISE_OUTCOMES_SQL).df()
        frame = preference_rows(outcomes, min_items)
        return replaced_with(
            conn,
            PREFERENCE_RATINGS,
            frame,
            "ratings",
            decimals=1,
            shown=frame[frame["segment"] == "all"],
            extra={"outcomes": MetadataValue.int(len(outcomes))},
        )


def goodhart_check(monthly: pd.DataFrame, drift: DriftSpec) -> AssetCheckResult:
    quiet, why = offline_outruns_online(
        monthly, drift.offline_rise_months, drift.min_offline_rise, drift.max_online_change
    )
    return AssetCheckResult(
        check_name="offline_tracks_online",
        asset_key=ONLINE_OFFLINE_CORRELATION.name,
        passed=quiet,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "why": MetadataValue.text(why),
            "monthly": MetadataValue.md(markdown_table(monthly.round(4))),
        },
    )


def _evidence_alarm_check(frame: pd.DataFrame) -> AssetCheckResult:
    alarms = frame[frame["alarm"].fillna(False).astype(bool)]
    return AssetCheckResult(
        check_name="offline_scores_predict_online",
        asset_key=EVIDENCE_CORRELATION.name,
        passed=alarms.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "alarms": MetadataValue.md(
                markdown_table(
                    alarms[["offline", "online_metric", "level", "n", "spearman"]].round(3)
                )
            ),
            "measured": MetadataValue.int(int(frame["alarm"].notna().sum())),
        },
    )


@table_asset(
    EVIDENCE_CORRELATION,
    group="reports",
    reads=[ONLINE_METRICS, PREFERENCE_RATINGS, CORRECTED_PASS_RATES],
    check_specs=[
        AssetCheckSpec(
            "offline_scores_predict_online",
            asset=EVIDENCE_CORRELATION.name,
            description=f"Every offline score (imported, Bradley-Terry, corrected pass rate) has a "
            f"Spearman correlation of at least {ALARM_BELOW} with every imported online metric, "
            "over at least 3 systems or cells (warns otherwise).",
        )
    ],
)
def evidence_correlation(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Do the offline scores rank systems the way users do? Every offline score per system or
    cell (imported offline metrics, Bradley-Terry ratings, corrected pass rates) against every
    imported online metric: Pearson and Spearman with bootstrap 95% intervals, and the alarm
    below a Spearman of 0.6."""
    lower = set(project.config().evidence.lower_is_better)
    with warehouse.get_connection() as conn:
        offline = conn.execute(OFFLINE_SCORES_SQL).df()
        online = conn.execute(ONLINE_SCORES_SQL).df()
        rows = evidence_correlation_rows(offline, online, lower)
        frame = pd.DataFrame(rows, columns=EVIDENCE_CORRELATION.column_names)
        if online.empty:
            context.log.info(
                "no online metrics imported (data/online_metrics/): nothing to correlate"
            )
        yield replaced_with(conn, EVIDENCE_CORRELATION, frame, "correlations")
    yield _evidence_alarm_check(frame)


@table_asset(
    HOLDOUT_GAP,
    group="reports",
    reads=[HOLDOUT_EVALUATION, ACTIVE_EVALUATION, HOLDOUT_PANEL_EVALUATION],
)
def holdout_gap(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Active minus holdout score per rotation, evaluator, version and category, with a 95%
    interval: how much better the set the team iterates on looks than the sealed one
    (eval-set overfitting), as the trusted judges see the candidate's and baseline's answers
    (panel:<rubric>), and the production outputs' token F1 as a sanity check.
    Model: reports/sql/holdout_gap.sql."""
    with warehouse.get_connection() as conn:
        frame = conn.execute(load_sql(__file__, "holdout_gap")).df()
        return replaced_with(conn, HOLDOUT_GAP, frame, "gaps", decimals=3)


@asset(
    group_name="reports",
    kinds={"html"},
    deps=deps_of(
        [
            SEGMENT_REPORT,
            RELEASE_GATES,
            QUALITY_COST_LATENCY,
            ONLINE_OFFLINE_CORRELATION,
            HOLDOUT_GAP,
            POOL_SIZES,
            JUDGE_CALIBRATION,
            FAILURE_MODE_DISTRIBUTION,
            # the trends and "since the last run" read this run's history rows
            *HISTORY_TABLES,
        ]
    ),
)
def html_report(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    project: ProjectResource,
    pyspark: LazyPySparkResource,
) -> MaterializeResult:
    """One self-contained HTML page per run under data/reports/ (and latest.html): release
    gates, quality/cost/latency, segment deltas with CIs, judge calibration, offline-online
    correlation, pool sizes and the failure modes (error analysis), with plots."""
    folder = data_dir() / "reports"
    with warehouse.get_connection() as conn:
        spark = spark_engine(project.config(), conn, pyspark)
        path, decision, plots = render_report(conn, folder, context.run_id, spark)
    key = dict(plots).get("Segment deltas") or (plots[0][1] if plots else None)
    return MaterializeResult(
        metadata={
            "decision": MetadataValue.text(decision),
            "path": MetadataValue.path(str(path)),
            "report": MetadataValue.url(path.resolve().as_uri()),
            "latest": MetadataValue.path(str(folder / "latest.html")),
            **(
                {
                    "segment_deltas": MetadataValue.md(
                        f"![segment deltas](data:image/png;base64,{key})"
                    )
                }
                if key
                else {}
            ),
        }
    )
