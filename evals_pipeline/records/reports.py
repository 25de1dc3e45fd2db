"""Segment report, release gates, quality/cost/latency, correlation, the holdout gap."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

SEGMENT_REPORT = Table(
    "segment_report",
    "Score per app version x category x user segment (and per category, and overall re-weighted to traffic), with paired deltas vs the baseline.",
    (
        Column("scorer", "VARCHAR", "'ensemble' or a single judge."),
        Column(
            "trusted",
            "BOOLEAN",
            "Whether the scorer is trusted (ensemble: all its judges); null when not calibrated.",
        ),
        Column(
            "level",
            "VARCHAR",
            "cell (category x user segment), category, or overall (post-stratified to traffic).",
        ),
        Column("app_version", "VARCHAR", "App version."),
        Column("category", "VARCHAR", "Task category ('all' for overall)."),
        Column("user_segment", "VARCHAR", "User segment ('all' above cell level)."),
        Column("baseline", "VARCHAR", "Baseline app version of the deltas."),
        Column("n", "INTEGER", "Cases scored."),
        Column("score", "DOUBLE", "Pass rate."),
        Column("std_error", "DOUBLE", "Standard error."),
        Column("ci_low", "DOUBLE", "95% interval (Wilson for pass rates)."),
        Column("ci_high", "DOUBLE", "95% interval."),
        Column(
            "delta_vs_baseline", "DOUBLE", "Paired difference vs the baseline on the same cases."
        ),
        Column("delta_ci_low", "DOUBLE", "95% interval of the delta."),
        Column("delta_ci_high", "DOUBLE", "95% interval of the delta."),
        Column("flagged", "BOOLEAN", "Change larger than 2 standard errors."),
        Column(
            "regressed",
            "BOOLEAN",
            "Worse by more than 3 points, significantly (Bonferroni over the version's segments).",
        ),
    ),
)

RELEASE_GATES = Table(
    "release_gates",
    "The upgrade decision as data: each gate for the candidate version vs the baseline, pass/fail with evidence.",
    (
        Column("candidate", "VARCHAR", "App version being considered."),
        Column("baseline", "VARCHAR", "Version it would replace."),
        Column(
            "gate",
            "VARCHAR",
            "layer1, segment_regression, large_changes, holdout, judge_trusted, or decision.",
        ),
        Column("status", "VARCHAR", "pass, fail, warn, or not_evaluated."),
        Column("evidence", "VARCHAR", "What the gate saw."),
    ),
)

QUALITY_COST_LATENCY = Table(
    "quality_cost_latency",
    "Per app version: quality (ensemble pass rate on the active pool), cost and latency, side by side.",
    (
        Column("app_version", "VARCHAR", "App version."),
        Column(
            "pass_rate",
            "DOUBLE",
            "Ensemble pass rate on the active pool (post-stratified to traffic).",
        ),
        Column("pass_rate_ci_low", "DOUBLE", "95% interval."),
        Column("pass_rate_ci_high", "DOUBLE", "95% interval."),
        Column("candidate_cost_usd_per_case", "DOUBLE", "Mean generation cost per active case."),
        Column("candidate_latency_ms", "DOUBLE", "Mean generation latency.", run_time=True),
        Column("production_cost_usd_per_trace", "DOUBLE", "Mean production cost per trace."),
        Column("production_latency_p50_ms", "DOUBLE", "Median production latency."),
        Column("production_latency_p95_ms", "DOUBLE", "95th percentile production latency."),
        Column("production_traces", "BIGINT", "Production traces of this version."),
    ),
)

ONLINE_OFFLINE_CORRELATION = Table(
    "online_offline_correlation",
    "Quarterly: offline judge scores vs online signals, per (app version x user segment) cell and per trace.",
    (
        Column("quarter", "DATE", "First day of the quarter."),
        Column("judge", "VARCHAR", "Judge whose verdicts are the offline score."),
        Column("trusted", "BOOLEAN", "Judge trust status."),
        Column("level", "VARCHAR", "cell or trace."),
        Column(
            "signal",
            "VARCHAR",
            "Online signal: thumbs_up_rate, task_completed, escalation, follow_up, session_continued.",
        ),
        Column("n", "INTEGER", "Cells or traces."),
        Column("pearson", "DOUBLE", "Pearson r."),
        Column("pearson_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("pearson_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("spearman", "DOUBLE", "Spearman rho."),
        Column("spearman_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("spearman_high", "DOUBLE", "Bootstrap 95% upper bound."),
    ),
)

HOLDOUT_GAP = Table(
    "holdout_gap",
    "Active score minus holdout score per rotation and category: the eval-set overfitting measure.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("evaluator", "VARCHAR", "Evaluator of both pools."),
        Column("category", "VARCHAR", "Task category."),
        Column("active_n", "INTEGER", "Active cases."),
        Column("active_score", "DOUBLE", "Mean active score."),
        Column("holdout_n", "INTEGER", "Holdout cases."),
        Column("holdout_score", "DOUBLE", "Mean holdout score."),
        Column("gap", "DOUBLE", "active - holdout."),
        Column("gap_ci_low", "DOUBLE", "95% interval (normal, independent samples)."),
        Column("gap_ci_high", "DOUBLE", "95% interval."),
        Column("active_std_error", "DOUBLE", "Standard error of the active score."),
        Column("holdout_std_error", "DOUBLE", "Standard error of the holdout score."),
    ),
)
