"""The holdout judged like the active pool, inside the seal: a candidate overfitted to the
active pool shows a significant active-holdout gap through the trusted judges and fails the
`holdout` gate; the same version untuned passes; nothing of the holdout reaches the warehouse
but aggregates."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from evals_pipeline.definitions import defs
from evals_pipeline.ingest.sources import FileTraceSource
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    HOLDOUT_GAP,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_PANEL_OUTPUTS,
    HOLDOUT_PANEL_VERDICTS,
    JUDGE_CACHE,
    POOL_EVENTS,
    RELEASE_GATES,
)
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.warehouse import Warehouse, connect
from evals_pipeline_tests.helpers import run_daily

REPO = Path(__file__).resolve().parents[1]
QUARTER = "2026-01-01"
PANEL = {"ops": {"holdout_panel_evaluation": {"config": {"force": True}}}}


def project_file(tmp: Path, tuned: bool) -> ProjectResource:
    """The embedded project with v3 as candidate, or v3-tuned (v3 overfitted to the exported
    active pool) in its place."""
    cfg = yaml.safe_load((REPO / "evals.yaml").read_text())
    if tuned:
        v3 = next(v for v in cfg["app_versions"] if v["name"] == "v3")
        cfg["app_versions"].append(
            {**v3, "name": "v3-tuned", "model": "offline/product-v3-tuned", "role": "candidate"}
        )
        v3["role"] = "retired"
    path = tmp / ("tuned.yaml" if tuned else "plain.yaml")
    path.write_text(yaml.safe_dump(cfg))
    return ProjectResource(path=str(path))


def resources(root: Path, project: ProjectResource) -> dict[str, object]:
    models = ("v1", "v2", "v3", "v3-tuned")
    return {
        "warehouse": Warehouse(database=str(warehouse_path())),
        "trace_source": FileTraceSource(root=str(root)),
        "holdout_store": HoldoutStore(),
        "reference_source": SimulatorReferences(root=str(root)),
        "judge_client": LiteLLMJudgeClient(
            api_bases={f"offline/product-{v}": str(root) for v in models}
        ),
        "project": project,
    }


def run(job: str, root: Path, project: ProjectResource, config: dict | None = None) -> None:
    result = defs.resolve_job_def(job).execute_in_process(
        run_config=config or {},
        resources=resources(root, project),
        **({} if job == "evals_calibration" else {"partition_key": QUARTER}),
    )
    assert result.success


def gate(conn: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    return conn.execute(
        f"SELECT status, evidence FROM {RELEASE_GATES} WHERE gate = 'holdout'"
    ).fetchall()[0]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory, small_sim: Path) -> dict[str, object]:
    data = tmp_path_factory.mktemp("holdout_panel")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(data))
    out: dict[str, object] = {"data": data}
    try:
        plain, tuned = project_file(data, tuned=False), project_file(data, tuned=True)
        assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
        run("evals_quarterly", small_sim, plain)  # no trusted judge yet: not judged
        with connect(warehouse_path(), read_only=True) as conn:
            out["before_calibration"] = conn.execute(
                f"SELECT count(*) FROM {HOLDOUT_PANEL_EVALUATION}"
            ).fetchall()[0][0]
        (data / "labels").mkdir()
        for f in (small_sim / "labels").glob("*.jsonl"):
            shutil.copy(f, data / "labels" / f.name)
        run("evals_calibration", small_sim, plain)
        run("evals_holdout_panel", small_sim, plain)  # the rotation's holdout, judges now trusted
        run("evals_reports", small_sim, plain)
        with connect(warehouse_path(), read_only=True) as conn:
            out["plain_gate"] = gate(conn)
            out["plain_gap"] = conn.execute(
                f"SELECT * FROM {HOLDOUT_GAP} WHERE app_version = 'v3'"
            ).df()
        # a team tunes v3 on the exported active pool; the next evaluation judges that version
        run("evals_quarterly", small_sim, tuned, PANEL)
        run("evals_reports", small_sim, tuned)
        with connect(warehouse_path(), read_only=True) as conn:
            out["tuned_gate"] = gate(conn)
            out["panel"] = conn.execute(f"SELECT * FROM {HOLDOUT_PANEL_EVALUATION}").df()
            out["reads"] = conn.execute(
                f"SELECT reason, n_cases FROM {POOL_EVENTS} WHERE event = 'holdout_read' "
                "AND reason LIKE 'holdout panel evaluation%' ORDER BY event_at"
            ).fetchall()
    finally:
        mp.undo()
    return out


def test_nothing_is_judged_before_a_judge_is_trusted(judged: dict) -> None:
    assert judged["before_calibration"] == 0


def test_an_untuned_candidate_passes_the_holdout_gate(judged: dict) -> None:
    status, evidence = judged["plain_gate"]
    assert status == "pass", evidence
    assert "trusted judges" in evidence and "sanity: reference_token_f1" in evidence


def test_a_candidate_tuned_on_the_active_pool_fails_it(judged: dict) -> None:
    status, evidence = judged["tuned_gate"]
    assert status == "fail", evidence
    panel = judged["panel"]
    tuned = panel[panel["app_version"] == "v3-tuned"]
    rate = {
        side: (g["n"] * g["pass_rate"]).sum() / g["n"].sum() for side, g in tuned.groupby("side")
    }
    # the planted effect: the memorized active inputs pass, the sealed ones do not
    assert rate["active"] > 0.95 and rate["active"] - rate["holdout"] > 0.1
    # the baseline, judged the same way, shows no such gap
    base = panel[panel["app_version"] == "v2"]
    base_rate = {s: (g["n"] * g["pass_rate"]).sum() / g["n"].sum() for s, g in base.groupby("side")}
    assert abs(base_rate["active"] - base_rate["holdout"]) < rate["active"] - rate["holdout"]


def test_only_aggregates_leave_the_store_and_every_read_is_logged(judged: dict) -> None:
    data = judged["data"]
    assert judged["reads"], "the holdout reads are logged in pool_events"
    assert {r[0].split(":")[0] for r in judged["reads"]} == {f"holdout panel evaluation {QUARTER}"}
    store = duckdb.connect(str(data / "holdout.duckdb"), read_only=True)
    warehouse = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        outputs = store.execute(f"SELECT count(*) FROM {HOLDOUT_PANEL_OUTPUTS.name}").fetchall()
        verdicts = store.execute(f"SELECT count(*) FROM {HOLDOUT_PANEL_VERDICTS.name}").fetchall()
        assert outputs[0][0] > 0 and verdicts[0][0] > 0
        store_keys = {
            r[0] for r in store.execute(f"SELECT cache_key FROM {JUDGE_CACHE.name}").fetchall()
        }
        warehouse_keys = {
            r[0] for r in warehouse.execute(f"SELECT cache_key FROM {JUDGE_CACHE.name}").fetchall()
        }
        answers = {
            r[0]
            for r in store.execute(
                f"SELECT output FROM {HOLDOUT_PANEL_OUTPUTS.name} WHERE output IS NOT NULL"
            ).fetchall()
        }
        tables = [
            r[0] for r in warehouse.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        for name in (HOLDOUT_PANEL_OUTPUTS.name, HOLDOUT_PANEL_VERDICTS.name):
            assert name not in tables
        # the holdout's calls were cached in the store; none of its answers is in the warehouse
        assert store_keys
        cached = {
            r[0]
            for r in warehouse.execute(
                f"SELECT response FROM {JUDGE_CACHE.name} WHERE response IS NOT NULL"
            ).fetchall()
        }
        assert not answers & cached
        assert not store_keys & warehouse_keys
    finally:
        store.close()
        warehouse.close()
