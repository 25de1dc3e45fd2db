"""Synthetic inputs' definitions: the asset and the job that runs it."""

from dagster import AssetSelection, Definitions, define_asset_job

from evals_pipeline.project import ProjectConfig
from evals_pipeline.synthetic.assets import synthetic_inputs

synthetic_job = define_asset_job(
    "evals_synthetic",
    selection=AssetSelection.assets(synthetic_inputs),
    description="Generate inputs from the dimension tuples, remove duplicates and filter them "
    "with the trusted realism judges; the admitted ones enter the active pool at the next "
    "rotation run (evals_quarterly).",
)


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(assets=[synthetic_inputs], jobs=[synthetic_job])
