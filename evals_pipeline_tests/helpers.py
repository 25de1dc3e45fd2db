"""Running the Dagster job the way the demo and the schedule do, against test resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult

from evals_pipeline.definitions import defs
from evals_pipeline.ingest.sources import FileTraceSource
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectResource
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.spark_lake import lake_location, spark_resource
from evals_pipeline.warehouse import Warehouse


def _resources(
    source_root: Path,
    project: ProjectResource | None = None,
    api_bases: dict[str, str] | None = None,
) -> dict[str, object]:
    """The jobs' resources over a simulated folder; `api_bases` adds or overrides a model's
    api_base (e.g. `drift:0.4` for an offline judge that drifted)."""
    cfg = (project or ProjectResource()).config()
    return {
        "warehouse": Warehouse(database=str(warehouse_path()), lake=lake_location(cfg)),
        "pyspark": spark_resource(cfg),
        "trace_source": FileTraceSource(root=str(source_root)),
        "holdout_store": HoldoutStore(),
        "reference_source": SimulatorReferences(root=str(source_root)),
        "judge_client": LiteLLMJudgeClient(
            api_bases={
                f"offline/{m}": str(source_root)
                for m in ("product-v1", "product-v2", "product-v3", "input-writer", "realism-judge")
            }
            | (api_bases or {})
        ),
        "project": project or ProjectResource(),
    }


def run_quarterly(
    source_root: Path, quarter: str, run_config: dict[str, Any] | None = None, **resources: Any
) -> ExecuteInProcessResult:
    """One run of `evals_quarterly` (rotation, holdout evaluation, export, snapshot)."""
    job = defs.resolve_job_def("evals_quarterly")
    return job.execute_in_process(
        run_config=run_config or {},
        partition_key=quarter,
        resources=_resources(source_root, **resources),
    )


def run_calibration(
    source_root: Path, run_config: dict[str, Any] | None = None, **resources: Any
) -> ExecuteInProcessResult:
    """One run of `evals_calibration` (labels, calibration verdicts, calibration, corrections)."""
    job = defs.resolve_job_def("evals_calibration")
    return job.execute_in_process(
        run_config=run_config or {}, resources=_resources(source_root, **resources)
    )


def run_reports(source_root: Path, quarter: str, **resources: Any) -> ExecuteInProcessResult:
    """One run of `evals_reports` for a quarter (segment report, gates, correlation, HTML)."""
    job = defs.resolve_job_def("evals_reports")
    return job.execute_in_process(
        partition_key=quarter, resources=_resources(source_root, **resources)
    )


def run_daily(
    source_root: Path,
    start: str,
    end: str | None = None,
    run_config: dict[str, Any] | None = None,
    instance: DagsterInstance | None = None,
    **resources: Any,
) -> ExecuteInProcessResult:
    """One run of `evals_daily` over [start, end] (a single-run backfill when end is given)."""
    job = defs.resolve_job_def("evals_daily")
    tags = {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end or start,
    }
    return job.execute_in_process(
        run_config=run_config or {},
        tags=tags,
        instance=instance,
        resources=_resources(source_root, **resources),
    )


def check_results(result: ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


TESTS_PROJECT = Path(__file__).parent / "fixtures" / "evals.tests.yaml"


def lean_project_dict() -> dict[str, Any]:
    """The tests' project file (`fixtures/evals.tests.yaml`) as one mapping, for a test that
    writes a variant of it."""
    from evals_pipeline.project import load_project

    cfg = load_project(TESTS_PROJECT)
    return cfg.model_dump(mode="json", exclude={"base_dir"})


def run_synthetic(source_root: Path, **resources: Any) -> ExecuteInProcessResult:
    """One run of `evals_synthetic` (generate, de-duplicate, filter)."""
    job = defs.resolve_job_def("evals_synthetic")
    return job.execute_in_process(resources=_resources(source_root, **resources))
