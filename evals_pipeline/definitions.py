"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

Stages follow DESIGN.md's data flow; each stage's assets live in its own package. Steps run
in one process (DuckDB allows a single writer per file), and multi-day backfills run as one
run (single-run backfill policy), so a quarter does not spawn 90 runs.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from evals_pipeline.analytics.assets import analytics_snapshot
from evals_pipeline.calibration.assets import (
    annotator_agreement,
    calibration_verdicts,
    corrected_pass_rates,
    human_label_files,
    judge_calibration,
    label_files_sensor,
)
from evals_pipeline.ingest.assets import trace_feedback_assets, traces_assets
from evals_pipeline.ingest.sources import FileTraceSource, SimulatedTraceSource
from evals_pipeline.judging.assets import (
    assertion_results,
    bt_ratings,
    candidate_outputs,
    judge_ensemble_and_review_queue,
    judge_verdicts,
    pairwise_verdicts,
)
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.partitions import weekly_partitions
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.assets import (
    active_evaluation,
    golden_export,
    golden_pool_rotation,
    holdout_evaluation,
)
from evals_pipeline.pools.references import ReviewedFileReferences, SimulatorReferences
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.reports.assets import (
    holdout_gap,
    html_report,
    online_offline_correlation,
    quality_cost_latency,
    release_gates,
    segment_report,
)
from evals_pipeline.review.assets import (
    failure_mode_distribution,
    review_items,
    weekly_review_sample,
)
from evals_pipeline.sampling.assets import trace_sample
from evals_pipeline.warehouse import Warehouse

daily_job = define_asset_job(
    "evals_daily",
    selection=AssetSelection.groups("ingest", "sampling", "analytics"),
    description="Ingest a day's traces and feedback, sample it, and refresh the analysts' snapshot.",
)

quarterly_job = define_asset_job(
    "evals_quarterly",
    selection=AssetSelection.groups("pools", "judging", "analytics"),
    description="Rotate the golden pools for the quarter that ended, evaluate the holdout once, export the golden set, "
    "then generate candidate outputs and judge the active pool.",
)

quarterly_schedule = build_schedule_from_partitioned_job(
    quarterly_job,
    description="On the first day of each quarter (00:00 UTC), for the quarter that just ended.",
    default_status=DefaultScheduleStatus.STOPPED,
)

calibration_job = define_asset_job(
    "evals_calibration",
    selection=AssetSelection.groups("calibration", "analytics")
    | AssetSelection.assets("failure_mode_distribution"),
    description="Load human labels, judge the labelled outputs, calibrate every judge, correct pass rates, "
    "count failure modes. Started by label_files_sensor when label files change.",
)

review_job = define_asset_job(
    "evals_review",
    selection=AssetSelection.assets("weekly_review_sample", "review_items", "analytics_snapshot"),
    partitions_def=weekly_partitions,
    description="Prepare the week's Friday review batch and rebuild the review app's queues "
    "(judge disagreements, the batch, calibration gaps).",
)

review_schedule = build_schedule_from_partitioned_job(
    review_job,
    hour_of_day=6,
    description="Every Friday at 06:00 UTC, for the week (Friday to Thursday) that just ended.",
    default_status=DefaultScheduleStatus.STOPPED,
)

reports_job = define_asset_job(
    "evals_reports",
    selection=AssetSelection.groups("reports", "analytics"),
    description="Segment report, release gates, quality/cost/latency, and the quarter's offline-online correlation.",
)

daily_schedule = build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=2,
    description="Every day at 02:00 UTC, for the UTC day that just ended.",
    default_status=DefaultScheduleStatus.STOPPED,
)


def resources() -> dict[str, object]:
    """The embedded default is simulated traffic; EVALS_TRACES_DIR points at real files
    (and golden references then come from reviewed files under data/golden/reviewed/)."""
    traces_dir = os.environ.get("EVALS_TRACES_DIR")
    if traces_dir:
        source, references = FileTraceSource(root=traces_dir), ReviewedFileReferences()
    else:
        source, references = SimulatedTraceSource(), SimulatorReferences()
    return {
        "warehouse": Warehouse(database=str(warehouse_path())),
        "trace_source": source,
        "holdout_store": HoldoutStore(),
        "reference_source": references,
        "judge_client": LiteLLMJudgeClient(),
    }


defs = Definitions(
    assets=[
        traces_assets,
        trace_feedback_assets,
        trace_sample,
        golden_pool_rotation,
        holdout_evaluation,
        active_evaluation,
        golden_export,
        candidate_outputs,
        assertion_results,
        judge_verdicts,
        judge_ensemble_and_review_queue,
        pairwise_verdicts,
        bt_ratings,
        human_label_files,
        calibration_verdicts,
        judge_calibration,
        annotator_agreement,
        corrected_pass_rates,
        segment_report,
        release_gates,
        quality_cost_latency,
        online_offline_correlation,
        holdout_gap,
        html_report,
        weekly_review_sample,
        review_items,
        failure_mode_distribution,
        analytics_snapshot,
    ],
    sensors=[label_files_sensor],
    jobs=[daily_job, quarterly_job, calibration_job, reports_job, review_job],
    schedules=[daily_schedule, quarterly_schedule, review_schedule],
    resources=resources(),
    executor=in_process_executor,
)
