"""Calibration's definitions: its assets, the calibration job and the label-files sensor."""

from dagster import AssetSelection, Definitions, define_asset_job

from evals_pipeline.calibration.assets import (
    annotator_agreement,
    calibration_verdicts,
    categorizer_accuracy,
    corrected_pass_rates,
    human_label_files,
    judge_calibration,
)
from evals_pipeline.calibration.sensors import label_files_sensor
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import FAILURE_MODE_DISTRIBUTION

calibration_job = define_asset_job(
    "evals_calibration",
    selection=AssetSelection.groups("calibration", "analytics")
    | AssetSelection.assets(FAILURE_MODE_DISTRIBUTION.name),
    description="Load human labels, judge the labelled outputs, calibrate every judge, correct pass rates, "
    "count failure modes. Started by label_files_sensor when label files change.",
)


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(
        assets=[
            human_label_files,
            calibration_verdicts,
            judge_calibration,
            annotator_agreement,
            corrected_pass_rates,
            categorizer_accuracy,
        ],
        jobs=[calibration_job],
        sensors=[label_files_sensor],
    )
