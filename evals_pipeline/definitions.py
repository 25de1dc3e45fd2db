"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

Each stage of DESIGN.md's data flow declares its own definitions (`<stage>/definitions.py`:
assets, checks, jobs, schedules, sensors); this module merges them and adds the resources
the project file chooses. Steps run in one process (DuckDB allows a single writer per file),
and multi-day backfills run as one run (single-run backfill policy), so a quarter does not
spawn 90 runs.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from evals_pipeline.analytics import definitions as analytics
from evals_pipeline.calibration import definitions as calibration
from evals_pipeline.ingest import definitions as ingest
from evals_pipeline.ingest.sources import FileTraceSource, TraceSource
from evals_pipeline.judging import definitions as judging
from evals_pipeline.judging.client import judge_client
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools import definitions as pools
from evals_pipeline.pools.references import ReferenceSource, ReviewedFileReferences
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectConfig, ProjectResource
from evals_pipeline.reports import definitions as reports
from evals_pipeline.review import definitions as review
from evals_pipeline.sampling import definitions as sampling
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.simulator.source import SimulatedTraceSource
from evals_pipeline.spark_lake import lake_location, spark_resource
from evals_pipeline.synthetic import definitions as synthetic
from evals_pipeline.warehouse import Warehouse

# In the order of the data flow.
STAGES = (ingest, sampling, synthetic, pools, judging, calibration, reports, review, analytics)


def resources(project: ProjectResource) -> dict[str, object]:
    """Every resource from the project file: the trace source and references its `source`
    names, a litellm client with its providers' endpoints, keys and limits, the warehouse
    (with the lake of engine spark) and the Spark session's settings."""
    cfg: ProjectConfig = project.config()
    if cfg.source.kind == "simulator":
        root = str(cfg.path(cfg.source.path)) if cfg.source.path else ""
        sim, canary = cfg.simulator, cfg.online_gates.canary
        # The simulated product runs the project file's canary, with the simulator's planted
        # effect on its users.
        planned = (
            {
                "canary_version": cfg.version("candidate"),
                "canary_control": cfg.version("baseline"),
                "canary_start": canary.start.isoformat(),
                "canary_days": canary.days,
                "canary_share": canary.share,
                "canary_effect": dict(sim.canary_effect),
            }
            if canary is not None
            else {}
        )
        source: TraceSource = SimulatedTraceSource(
            root=root,
            seed=sim.seed,
            start=sim.start,
            end=sim.end,
            traces_per_day=sim.traces_per_day,
            span_format=cfg.span_format or "",
            **planned,
        )
        references: ReferenceSource = SimulatorReferences(root=root)
    else:
        source = FileTraceSource(
            root=str(cfg.path(cfg.source.path)), span_format=cfg.span_format or ""
        )
        references = ReviewedFileReferences(
            folder=str(cfg.path(cfg.source.references)) if cfg.source.references else ""
        )
    return {
        "warehouse": Warehouse(
            database=str(warehouse_path()),
            connection_config=cfg.warehouse.connection_config(),
            lake=lake_location(cfg),
        ),
        # Started only by an asset of engine spark (the traffic stages), never on duckdb.
        "pyspark": spark_resource(cfg),
        "trace_source": source,
        "holdout_store": HoldoutStore(),
        "reference_source": references,
        "judge_client": judge_client(cfg),
        "project": project,
    }


def build_definitions(project: ProjectResource) -> Definitions:
    """Every stage's definitions merged, with the resources of `project` (validated here: a
    bad project file fails when the code location loads)."""
    cfg = project.config()
    return Definitions.merge(
        *(stage.definitions(cfg) for stage in STAGES),
        Definitions(resources=resources(project), executor=in_process_executor),
    )


PROJECT = ProjectResource()
defs = build_definitions(PROJECT)
