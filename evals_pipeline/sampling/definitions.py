"""Sampling's definitions (its asset runs in the daily job, defined with ingest)."""

from dagster import Definitions

from evals_pipeline.project import ProjectConfig
from evals_pipeline.sampling.assets import trace_sample


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(assets=[trace_sample])
