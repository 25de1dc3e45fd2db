"""Review's definitions: the weekly batch, the app's queues, error analysis, the review job
and its Friday schedule."""

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from evals_pipeline.partitions import schedule_status, weekly_partitions
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import REVIEW_ITEMS, WEEKLY_REVIEW_SAMPLE
from evals_pipeline.review.assets import (
    failure_mode_distribution,
    review_items,
    weekly_review_sample,
)

review_job = define_asset_job(
    "evals_review",
    selection=AssetSelection.assets(
        WEEKLY_REVIEW_SAMPLE.name, REVIEW_ITEMS.name, "analytics_snapshot"
    ),
    partitions_def=weekly_partitions,
    description="Prepare the week's Friday review batch and rebuild the review app's queues "
    "(judge disagreements, the batch, calibration gaps).",
)


def definitions(project: ProjectConfig) -> Definitions:
    review_schedule = build_schedule_from_partitioned_job(
        review_job,
        hour_of_day=6,
        description="Every Friday at 06:00 UTC, for the week (Friday to Thursday) that just ended. "
        "On when the project file says schedules.weekly_review: true.",
        default_status=schedule_status(project.schedules.weekly_review),
    )
    return Definitions(
        assets=[weekly_review_sample, review_items, failure_mode_distribution],
        jobs=[review_job],
        schedules=[review_schedule],
    )
