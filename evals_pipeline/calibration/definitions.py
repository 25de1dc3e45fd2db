"""Calibration's definitions: its assets, the calibration job and the drop-folder sensors."""

from dagster import AssetSelection, Definitions, define_asset_job

from evals_pipeline.calibration.assets import (
    annotator_agreement,
    calibration_verdicts,
    categorizer_accuracy,
    corrected_pass_rates,
    external_verdict_files,
    failure_mode_judges,
    few_shot_effect,
    few_shot_examples,
    human_label_files,
    judge_bias,
    judge_calibration,
    pairwise_calibration,
)
from evals_pipeline.calibration.sensors import label_files_sensor, verdict_files_sensor
from evals_pipeline.history import history_asset
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import (
    CORRECTED_PASS_RATES,
    FAILURE_MODE_DISTRIBUTION,
    FAILURE_MODE_VERDICTS,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    REVIEW_QUEUE,
)

calibration_job = define_asset_job(
    "evals_calibration",
    selection=AssetSelection.groups("calibration", "analytics")
    # only trusted judges vote: the ensemble and the review queue follow each calibration
    | AssetSelection.assets(
        FAILURE_MODE_DISTRIBUTION.name,
        JUDGE_ENSEMBLE.name,
        REVIEW_QUEUE.name,
        FAILURE_MODE_VERDICTS.name,
    ),
    description="Load human labels (and their gold labels) and external verdicts, judge the "
    "labelled outputs, calibrate every judge (pass/fail and pairwise), correct pass rates, count "
    "failure modes, and rebuild the ensemble, the review queue and the per-failure-mode verdicts "
    "from the judges now trusted. "
    "Started by label_files_sensor and verdict_files_sensor when files change.",
)


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(
        assets=[
            human_label_files,
            external_verdict_files,
            failure_mode_judges,
            few_shot_examples,
            calibration_verdicts,
            few_shot_effect,
            judge_calibration,
            judge_bias,
            pairwise_calibration,
            annotator_agreement,
            corrected_pass_rates,
            categorizer_accuracy,
            history_asset(JUDGE_CALIBRATION, "calibration"),
            history_asset(CORRECTED_PASS_RATES, "calibration"),
        ],
        jobs=[calibration_job],
        sensors=[label_files_sensor, verdict_files_sensor],
    )
