"""Segment report, release gates, quality/cost/latency, correlation, the holdout gap."""

from __future__ import annotations

from evals_pipeline.records.ingest import quarantine_table
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
            "cell (category x user segment), category, overall (post-stratified to traffic), or "
            "synthetic (the admitted synthetic inputs per category and 'all': apart from traffic, "
            "in no gate).",
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
            "layer1, segment_regression, large_changes, holdout, judge_trusted, ensemble_quorum, shadow, canary, or decision.",
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
        Column(
            "pareto_optimal",
            "BOOLEAN",
            "No other version has a pass rate at least as high, cost and latency at least as low, "
            "and is better on one (cost: production per trace, else generation per case; latency: "
            "production p50, else generation).",
        ),
        Column("dominated_by", "VARCHAR", "The versions that dominate this one, comma separated."),
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
        Column(
            "app_version",
            "VARCHAR",
            "The version whose outputs were scored: a version (panel: the trusted judges on the "
            "candidate's and baseline's answers), or 'production' (reference_token_f1, a sanity "
            "check on production outputs).",
        ),
    ),
)

ONLINE_METRICS = Table(
    "online_metrics",
    "Per-system (or per system x segment cell) metrics imported from data/online_metrics/, "
    "each with a date: online metrics, and offline scores from other tools (kind offline).",
    (
        Column("date", "DATE", "The day (or period start) the value is for."),
        Column("system", "VARCHAR", "System or app version."),
        Column("segment", "VARCHAR", "Segment of the cell, or 'all' for the whole system."),
        Column("metric", "VARCHAR", "Metric name (e.g. thumbs_up_rate, retention_d7)."),
        Column(
            "kind", "VARCHAR", "online (what users did) or offline (a score from another tool)."
        ),
        Column("value", "DOUBLE", "The value."),
        Column(
            "n", "BIGINT", "Sessions, users or items behind the value (optional; weights the mean)."
        ),
        Column("attributes", "JSON", "Every other column of the file."),
        Column("source_file", "VARCHAR", "Metrics file."),
        Column("source_row", "BIGINT", "Line or CSV row in that file, from 1."),
    ),
)

QUARANTINED_ONLINE_METRICS = quarantine_table("quarantined_online_metrics", "online metric")

PREFERENCE_RATINGS = Table(
    "preference_ratings",
    "Bradley-Terry ratings of systems from every kind of pairwise evidence (gold human "
    "preferences, imported judges' verdicts, our pairwise judges), per segment, with bootstrap "
    "intervals.",
    (
        Column(
            "evidence",
            "VARCHAR",
            "human (gold pairwise labels), or the judge whose verdicts were used (external/<name>, a litellm model).",
        ),
        Column("segment", "VARCHAR", "Segment, or 'all'."),
        Column("system", "VARCHAR", "System (model or app version)."),
        Column("rating", "DOUBLE", "Bradley-Terry rating on the Elo scale, mean 0 within the fit."),
        Column("ci_low", "DOUBLE", "Bootstrap 2.5% quantile (resampling items)."),
        Column("ci_high", "DOUBLE", "Bootstrap 97.5% quantile."),
        Column("comparisons", "INTEGER", "Comparisons involving this system."),
        Column("win_rate", "DOUBLE", "Wins + half ties over comparisons."),
        Column("rank", "INTEGER", "1 = highest rating within the evidence and segment."),
    ),
)

EVIDENCE_CORRELATION = Table(
    "evidence_correlation",
    "Offline scores per system or cell (imported scores, Bradley-Terry ratings, corrected pass "
    "rates) against each imported online metric: Pearson and Spearman with bootstrap intervals, "
    "and the alarm below the Spearman threshold.",
    (
        Column(
            "offline",
            "VARCHAR",
            "imported:<metric>, bt:<evidence> (preference_ratings), or pass_rate:<judge> (corrected_pass_rates).",
        ),
        Column("online_metric", "VARCHAR", "Imported online metric."),
        Column("level", "VARCHAR", "system (segment 'all') or cell (system x segment)."),
        Column("n", "INTEGER", "Systems or cells with both values."),
        Column("first_date", "DATE", "Earliest date of the online values used."),
        Column("last_date", "DATE", "Latest date of the online values used."),
        Column("pearson", "DOUBLE", "Pearson r."),
        Column("pearson_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("pearson_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("spearman", "DOUBLE", "Spearman rho."),
        Column("spearman_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("spearman_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column(
            "alarm",
            "BOOLEAN",
            "Spearman below 0.6 (sign turned for evidence.lower_is_better metrics) or undefined: the "
            "offline score does not predict this metric; null with fewer than 3 systems or cells.",
        ),
    ),
)


_GATE_VERDICT = (
    Column(
        "harm",
        "DOUBLE",
        "How much worse the candidate is (the difference turned so that positive is worse).",
    ),
    Column("se", "DOUBLE", "Standard error of the difference."),
    Column("p_value", "DOUBLE", "One-sided p-value that the candidate is worse."),
    Column(
        "significant",
        "BOOLEAN",
        "Worse beyond chance: Holm over every row of the gate at online_gates.alpha.",
    ),
    Column(
        "detectable",
        "DOUBLE",
        "The harm this row detects with 80% power at that level: above max_drop, the row cannot vouch for it.",
    ),
    Column(
        "status", "VARCHAR", "fail (significantly worse by more than max_drop), pass, or no_data."
    ),
)

SHADOW_GATE = Table(
    "shadow_gate",
    "Shadow period (seed 003): the trusted judges' pass rates of the candidate's and the control's answers to the same live inputs, paired, per category.",
    (
        Column(
            "candidate",
            "VARCHAR",
            "App version in shadow (answers live inputs, users never see it).",
        ),
        Column("control", "VARCHAR", "App version users were served (role baseline)."),
        Column("window_start", "TIMESTAMP", "Shadow period start (UTC)."),
        Column("window_end", "TIMESTAMP", "Shadow period end (UTC, exclusive)."),
        Column("level", "VARCHAR", "all or category."),
        Column("category", "VARCHAR", "Task category ('all' for every input)."),
        Column(
            "n",
            "INTEGER",
            "Live inputs both answers have a verdict for (the trusted judges' majority).",
        ),
        Column(
            "undecided",
            "INTEGER",
            "Live inputs judged but left out: a tie or no valid answer for either answer.",
        ),
        Column(
            "control_pass_rate", "DOUBLE", "Pass rate of the control's answers (what users saw)."
        ),
        Column(
            "candidate_pass_rate",
            "DOUBLE",
            "Pass rate of the candidate's answers to the same inputs.",
        ),
        Column("delta", "DOUBLE", "Paired difference candidate - control."),
        Column("ci_low", "DOUBLE", "95% interval of the difference."),
        Column("ci_high", "DOUBLE", "95% interval of the difference."),
        *_GATE_VERDICT,
        Column("judges", "VARCHAR", "The trusted judges whose majority decided each answer."),
    ),
)

CANARY_GATE = Table(
    "canary_gate",
    "Canary (seed 003): online signal rates of canary users (served the candidate) against control users over the monitoring window, per segment, with intervals.",
    (
        Column("candidate", "VARCHAR", "App version the canary users were served."),
        Column("control", "VARCHAR", "App version the other users were served (role baseline)."),
        Column("window_start", "DATE", "First day of the canary."),
        Column("days_observed", "INTEGER", "Days of the window in the traffic so far."),
        Column("days_planned", "INTEGER", "Days of the monitoring window."),
        Column("level", "VARCHAR", "all, category or user_segment."),
        Column("segment", "VARCHAR", "The category or user segment ('all' for every user)."),
        Column("signal", "VARCHAR", "Online signal: the share of traces with this event."),
        Column("canary_users", "INTEGER", "Canary users with traces in the segment."),
        Column("control_users", "INTEGER", "Control users with traces in the segment."),
        Column("canary_n", "INTEGER", "Canary traces."),
        Column("control_n", "INTEGER", "Control traces."),
        Column("canary_rate", "DOUBLE", "Share of the canary's traces with the event."),
        Column("control_rate", "DOUBLE", "Share of the control's traces with the event."),
        Column("delta", "DOUBLE", "canary_rate - control_rate."),
        Column("ci_low", "DOUBLE", "95% interval of the difference (users as clusters)."),
        Column("ci_high", "DOUBLE", "95% interval of the difference."),
        *_GATE_VERDICT,
    ),
)
