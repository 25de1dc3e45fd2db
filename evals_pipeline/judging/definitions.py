"""Judging's definitions (its assets run in the quarterly job, defined with the pools)."""

from dagster import Definitions

from evals_pipeline.judging.assets import (
    assertion_results,
    bt_ratings,
    candidate_outputs,
    failure_mode_verdicts,
    judge_ensemble_and_review_queue,
    judge_verdicts,
    pairwise_verdicts,
)
from evals_pipeline.project import ProjectConfig


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(
        assets=[
            candidate_outputs,
            assertion_results,
            judge_verdicts,
            failure_mode_verdicts,
            judge_ensemble_and_review_queue,
            pairwise_verdicts,
            bt_ratings,
        ]
    )
