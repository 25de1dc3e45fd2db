"""The reports' definitions: their assets, the reports job, and the sensor that runs it after
a quarterly or calibration run."""

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    RunStatusSensorContext,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    run_status_sensor,
    schedule,
)

from evals_pipeline.calibration.definitions import calibration_job
from evals_pipeline.calibration.evidence import evidence_dir
from evals_pipeline.calibration.sensors import drop_folder_sensor
from evals_pipeline.history import history_asset
from evals_pipeline.partitions import quarterly_partitions, schedule_status, sensor_status
from evals_pipeline.pools.definitions import quarterly_job
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import (
    CANARY_GATE,
    ONLINE_METRICS,
    ONLINE_OFFLINE_CORRELATION,
    RELEASE_GATES,
    SEGMENT_REPORT,
    SHADOW_GATE,
)
from evals_pipeline.reports.assets import (
    canary_gate,
    evidence_correlation,
    holdout_gap,
    html_report,
    online_metric_files,
    online_offline_correlation,
    preference_ratings,
    quality_cost_latency,
    release_gates,
    segment_report,
    shadow_gate,
)
from evals_pipeline.reports.online_gates import evaluation_days

reports_job = define_asset_job(
    "evals_reports",
    selection=AssetSelection.groups("reports", "analytics"),
    description="Segment report, release gates, quality/cost/latency, the quarter's offline-online "
    "correlation, imported online metrics, preference ratings and their correlation.",
)

online_gates_job = define_asset_job(
    "evals_online_gates",
    selection=AssetSelection.assets(
        SHADOW_GATE.name, CANARY_GATE.name, RELEASE_GATES.name, f"{RELEASE_GATES.name}_history"
    )
    | AssetSelection.assets("html_report"),
    description="The shadow and canary gates over the traffic so far, then the release gates and "
    "the HTML report: run daily during their windows (seed 003). The reports job reads the "
    "online gates as they stand; this job re-evaluates them.",
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

    @schedule(
        name="online_gates_daily",
        job=online_gates_job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=schedule_status(project.schedules.online_gates),
        description="Every morning (06:00 UTC, after the night's ingest) while the shadow period "
        "or the canary's monitoring window is open, and two days past it for late feedback: "
        "evaluate the online gates. On when the project file says schedules.online_gates: true.",
    )
    def online_gates_daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        day = context.scheduled_execution_time.date()
        days = evaluation_days(project.online_gates)
        if days is None:
            return SkipReason("no online gate in the project file (online_gates.shadow/canary)")
        if not days[0] <= day <= days[1]:
            return SkipReason(f"outside the online gates' days {days[0]} .. {days[1]}")
        return RunRequest(run_key=f"online-gates-{day}")

    return Definitions(
        assets=[
            segment_report,
            shadow_gate,
            canary_gate,
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
        jobs=[reports_job, online_gates_job],
        schedules=[online_gates_daily],
        sensors=[reports_after_evaluation, online_metrics_sensor],
    )
