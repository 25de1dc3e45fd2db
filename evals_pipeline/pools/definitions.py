"""The pools' definitions, and the quarterly job they start (rotate, evaluate the holdout
once, export, then generate and judge)."""

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from evals_pipeline.partitions import schedule_status
from evals_pipeline.pools.assets import (
    active_evaluation,
    golden_export,
    golden_pool_rotation,
    holdout_evaluation,
    holdout_panel_evaluation,
)
from evals_pipeline.project import ProjectConfig

# Layer 3's queue (review/holdout.py) is built right after the rotation's holdout is judged.
HOLDOUT_REVIEW = AssetSelection.assets("holdout_review")

quarterly_job = define_asset_job(
    "evals_quarterly",
    selection=AssetSelection.groups("pools", "judging", "analytics") | HOLDOUT_REVIEW,
    description="Rotate the golden pools for the quarter that ended, evaluate the holdout once, export the golden set, "
    "then generate candidate outputs and judge the active pool; queue a sample of the holdout "
    "for the principal expert's sealed review.",
)

# The rotation's holdout judged again by itself: after a calibration made judges trusted (the
# quarterly run found none), or with force after a judge or rubric changed.
holdout_panel_job = define_asset_job(
    "evals_holdout_panel",
    selection=AssetSelection.assets("holdout_panel_evaluation") | HOLDOUT_REVIEW,
    description="Judge the latest rotation's holdout with the trusted judges, inside the seal "
    "(holdout_panel_evaluation), and queue a sample of it for the principal expert's sealed "
    "review: after a calibration run made judges trusted.",
)


def definitions(project: ProjectConfig) -> Definitions:
    quarterly_schedule = build_schedule_from_partitioned_job(
        quarterly_job,
        description="On the first day of each quarter (00:00 UTC), for the quarter that just ended. "
        "On when the project file says schedules.quarterly: true.",
        default_status=schedule_status(project.schedules.quarterly),
    )
    return Definitions(
        assets=[
            golden_pool_rotation,
            holdout_evaluation,
            active_evaluation,
            golden_export,
            holdout_panel_evaluation,
        ],
        jobs=[quarterly_job, holdout_panel_job],
        schedules=[quarterly_schedule],
    )
