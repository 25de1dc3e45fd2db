"""The analytics snapshot's definitions (every job ends with it)."""

from dagster import Definitions

from evals_pipeline.analytics.assets import analytics_snapshot
from evals_pipeline.project import ProjectConfig


def definitions(project: ProjectConfig) -> Definitions:
    return Definitions(assets=[analytics_snapshot])
