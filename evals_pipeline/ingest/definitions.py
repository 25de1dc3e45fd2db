"""Ingest's definitions, and the daily job it starts (ingest, sample, snapshot)."""

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from evals_pipeline.ingest.assets import trace_feedback_assets, traces_assets
from evals_pipeline.partitions import schedule_status
from evals_pipeline.project import ProjectConfig

daily_job = define_asset_job(
    "evals_daily",
    selection=AssetSelection.groups("ingest", "sampling", "analytics"),
    description="Ingest a day's traces and feedback, sample it, and refresh the analysts' snapshot.",
)


def definitions(project: ProjectConfig) -> Definitions:
    daily_schedule = build_schedule_from_partitioned_job(
        daily_job,
        hour_of_day=2,
        description="Every day at 02:00 UTC, for the UTC day that just ended. "
        "On when the project file says schedules.daily: true.",
        default_status=schedule_status(project.schedules.daily),
    )
    return Definitions(
        assets=[traces_assets, trace_feedback_assets], jobs=[daily_job], schedules=[daily_schedule]
    )
