"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

Stages follow DESIGN.md's data flow; each stage's assets live in its own package. Steps run
in one process (DuckDB allows a single writer per file), and multi-day backfills run as one
run (single-run backfill policy), so a quarter does not spawn 90 runs.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    RunStatusSensorContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
    run_status_sensor,
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
from evals_pipeline.ingest.sources import FileTraceSource, TraceSource
from evals_pipeline.judging.assets import (
    assertion_results,
    bt_ratings,
    candidate_outputs,
    judge_ensemble_and_review_queue,
    judge_verdicts,
    pairwise_verdicts,
)
from evals_pipeline.judging.client import judge_client
from evals_pipeline.partitions import quarterly_partitions, weekly_partitions
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.assets import (
    active_evaluation,
    golden_export,
    golden_pool_rotation,
    holdout_evaluation,
)
from evals_pipeline.pools.references import ReferenceSource, ReviewedFileReferences
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectResource
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
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.simulator.source import SimulatedTraceSource
from evals_pipeline.warehouse import Warehouse

PROJECT = ProjectResource()
_project = PROJECT.config()  # validated when the code location loads: a bad file fails here


def _status(enabled: bool) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if enabled else DefaultScheduleStatus.STOPPED


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
    description="On the first day of each quarter (00:00 UTC), for the quarter that just ended. "
    "On when the project file says schedules.quarterly: true.",
    default_status=_status(_project.schedules.quarterly),
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
    description="Every Friday at 06:00 UTC, for the week (Friday to Thursday) that just ended. "
    "On when the project file says schedules.weekly_review: true.",
    default_status=_status(_project.schedules.weekly_review),
)

reports_job = define_asset_job(
    "evals_reports",
    selection=AssetSelection.groups("reports", "analytics"),
    description="Segment report, release gates, quality/cost/latency, and the quarter's offline-online correlation.",
)

daily_schedule = build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=2,
    description="Every day at 02:00 UTC, for the UTC day that just ended. "
    "On when the project file says schedules.daily: true.",
    default_status=_status(_project.schedules.daily),
)


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[quarterly_job, calibration_job],
    request_job=reports_job,
    default_status=DefaultSensorStatus.RUNNING
    if _project.schedules.reports
    else DefaultSensorStatus.STOPPED,
    description="After a successful quarterly or calibration run, rebuild the reports: for the "
    "quarterly run's quarter, or for the latest complete quarter after a calibration. On when "
    "the project file says schedules.reports: true.",
)
def reports_after_evaluation(context: RunStatusSensorContext) -> RunRequest | SkipReason:
    run = context.dagster_run
    return reports_request(run.run_id, run.tags.get("dagster/partition"))


def reports_request(run_id: str, quarter: str | None) -> RunRequest | SkipReason:
    """The reports run after run `run_id`: for its quarter, else the latest complete one."""
    if not quarter:
        keys = quarterly_partitions.get_partition_keys()
        if not keys:
            return SkipReason("no complete quarter yet")
        quarter = keys[-1]
    return RunRequest(run_key=f"reports-after-{run_id}", partition_key=quarter)


def resources(project: ProjectResource = PROJECT) -> dict[str, object]:
    """Every resource from the project file: the trace source and references its `source`
    names, a litellm client with its providers' endpoints, keys and limits."""
    from evals_pipeline.project import ProjectConfig

    cfg: ProjectConfig = project.config()
    if cfg.source.kind == "simulator":
        root = str(cfg.path(cfg.source.path)) if cfg.source.path else ""
        sim = cfg.simulator
        source: TraceSource = SimulatedTraceSource(
            root=root,
            seed=sim.seed,
            start=sim.start,
            end=sim.end,
            traces_per_day=sim.traces_per_day,
        )
        references: ReferenceSource = SimulatorReferences(root=root)
    else:
        source = FileTraceSource(root=str(cfg.path(cfg.source.path)))
        references = ReviewedFileReferences(
            folder=str(cfg.path(cfg.source.references)) if cfg.source.references else ""
        )
    return {
        "warehouse": Warehouse(database=str(warehouse_path())),
        "trace_source": source,
        "holdout_store": HoldoutStore(),
        "reference_source": references,
        "judge_client": judge_client(cfg),
        "project": project,
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
    sensors=[label_files_sensor, reports_after_evaluation],
    jobs=[daily_job, quarterly_job, calibration_job, reports_job, review_job],
    schedules=[daily_schedule, quarterly_schedule, review_schedule],
    resources=resources(),
    executor=in_process_executor,
)
