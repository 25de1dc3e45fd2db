"""The reports' definitions: their assets, the reports job, and the sensor that runs it after
a quarterly or calibration run."""

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    RunStatusSensorContext,
    SkipReason,
    define_asset_job,
    run_status_sensor,
)

from evals_pipeline.calibration.definitions import calibration_job
from evals_pipeline.calibration.evidence import evidence_dir
from evals_pipeline.calibration.sensors import drop_folder_sensor
from evals_pipeline.history import history_asset
from evals_pipeline.partitions import quarterly_partitions, sensor_status
from evals_pipeline.pools.definitions import quarterly_job
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import (
    ONLINE_METRICS,
    ONLINE_OFFLINE_CORRELATION,
    RELEASE_GATES,
    SEGMENT_REPORT,
)
from evals_pipeline.reports.assets import (
    evidence_correlation,
    holdout_gap,
    html_report,
    online_metric_files,
    online_offline_correlation,
    preference_ratings,
    quality_cost_latency,
    release_gates,
    segment_report,
)

reports_job = define_asset_job(
    "evals_reports",
    selection=AssetSelection.groups("reports", "analytics"),
    description="Segment report, release gates, quality/cost/latency, the quarter's offline-online "
    "correlation, imported online metrics, preference ratings and their correlation.",
)

online_metrics_sensor = drop_folder_sensor(
    "online_metrics_sensor",
    lambda: evidence_dir("online_metrics"),
    ONLINE_METRICS,
    "evals_reports",
    "online metric",
)


def reports_request(run_id: str, quarter: str | None) -> RunRequest | SkipReason:
    """The reports run after run `run_id`: for its quarter, else the latest complete one."""
    if not quarter:
        keys = quarterly_partitions.get_partition_keys()
        if not keys:
            return SkipReason("no complete quarter yet")
        quarter = keys[-1]
    return RunRequest(run_key=f"reports-after-{run_id}", partition_key=quarter)


def definitions(project: ProjectConfig) -> Definitions:
    @run_status_sensor(
        name="reports_after_evaluation",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[quarterly_job, calibration_job],
        request_job=reports_job,
        default_status=sensor_status(project.schedules.reports),
        description="After a successful quarterly or calibration run, rebuild the reports: for the "
        "quarterly run's quarter, or for the latest complete quarter after a calibration. On when "
        "the project file says schedules.reports: true.",
    )
    def reports_after_evaluation(context: RunStatusSensorContext) -> RunRequest | SkipReason:
        run = context.dagster_run
        return reports_request(run.run_id, run.tags.get("dagster/partition"))

    return Definitions(
        assets=[
            segment_report,
            release_gates,
            quality_cost_latency,
            online_offline_correlation,
            holdout_gap,
            online_metric_files,
            preference_ratings,
            evidence_correlation,
            html_report,
            history_asset(SEGMENT_REPORT, "reports"),
            history_asset(RELEASE_GATES, "reports"),
            history_asset(ONLINE_OFFLINE_CORRELATION, "reports", partition_column="quarter"),
        ],
        jobs=[reports_job],
        sensors=[reports_after_evaluation, online_metrics_sensor],
    )
