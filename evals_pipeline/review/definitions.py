"""Review's definitions: the weekly batch, the app's queues, error analysis, the review job
and its Friday schedule; the expert review of the holdout (Layer 3), its job and the sensor
that collects the sealed session's labels and views."""

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from evals_pipeline.calibration.sensors import drop_folder_sensor
from evals_pipeline.partitions import schedule_status, weekly_partitions
from evals_pipeline.paths import holdout_review_dir
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import HOLDOUT_REVIEW, REVIEW_ITEMS, WEEKLY_REVIEW_SAMPLE
from evals_pipeline.review.assets import (
    failure_mode_distribution,
    holdout_review,
    review_items,
    weekly_review_sample,
)
from evals_pipeline.review.sealed import area_state

review_job = define_asset_job(
    "evals_review",
    selection=AssetSelection.assets(
        WEEKLY_REVIEW_SAMPLE.name, REVIEW_ITEMS.name, "analytics_snapshot"
    ),
    partitions_def=weekly_partitions,
    description="Prepare the week's Friday review batch and rebuild the review app's queues "
    "(judge disagreements, the batch, calibration gaps).",
)


holdout_review_job = define_asset_job(
    "evals_holdout_review",
    selection=AssetSelection.assets(HOLDOUT_REVIEW.name, "analytics_snapshot"),
    description="Layer 3: queue the latest rotation's holdout answers for the principal "
    "expert's sealed session if not yet queued, collect their labels into the holdout store "
    "and their views into pool_events, and publish the judges' agreement with them.",
)

holdout_review_sensor = drop_folder_sensor(
    "holdout_review_sensor",
    holdout_review_dir,
    HOLDOUT_REVIEW,
    "evals_holdout_review",
    "sealed label or view-log",
    state_of=area_state,
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
        assets=[weekly_review_sample, review_items, failure_mode_distribution, holdout_review],
        jobs=[review_job, holdout_review_job],
        schedules=[review_schedule],
        sensors=[holdout_review_sensor],
    )
