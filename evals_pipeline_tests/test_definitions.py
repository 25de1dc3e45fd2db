"""The records drive Dagster and the SQL: asset names, descriptions, schemas and lineage come
from `records/`, a table is renamed there in one line, the warehouse is set up once, the
per-stage definitions merge under either kind of project, and asset functions stay thin."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, Definitions

from evals_pipeline import records
from evals_pipeline.definitions import STAGES, build_definitions
from evals_pipeline.ingest.sources import FileTraceSource
from evals_pipeline.paths import REPO_ROOT
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ACTIVE_CASES,
    ACTIVE_EVALUATION,
    ANALYST_TABLES,
    HOLDOUT_EVALUATION,
    SEAL_VIEWS,
    TRACE_SAMPLE,
    WAREHOUSE_TABLES,
)
from evals_pipeline.simulator.source import SimulatedTraceSource
from evals_pipeline.specs import deps_of
from evals_pipeline.sql import load_sql, render
from evals_pipeline.warehouse import SCHEMA_MARK, connect, schema_digest, set_up, table_names
from evals_pipeline_tests.test_project import write_project

PACKAGE = REPO_ROOT / "evals_pipeline"
# Assets that write something other than a warehouse table.
NOT_TABLES = {"analytics_snapshot", "golden_export", "html_report"}


def _files_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectResource:
    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    (tmp_path / "export" / "export").mkdir(parents=True)
    path = write_project(
        tmp_path / "evals.yaml", tmp_path / "export", "http://127.0.0.1:9", ["openai/j1"]
    )
    return ProjectResource(path=str(path))


def test_the_stage_definitions_merge_under_the_simulator_and_a_files_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = build_definitions(ProjectResource(path=str(REPO_ROOT / "evals.yaml")))
    files = build_definitions(_files_project(tmp_path, monkeypatch))
    for defs in (simulator, files):
        Definitions.validate_loadable(defs)
        assert {j.name for j in defs.jobs} >= {
            "evals_daily",
            "evals_quarterly",
            "evals_calibration",
            "evals_reports",
            "evals_review",
            "evals_holdout_review",
        }
        assert {s.name for s in defs.sensors} == {
            "label_files_sensor",
            "verdict_files_sensor",
            "online_metrics_sensor",
            "reports_after_evaluation",
            "holdout_review_sensor",
        }
    assert isinstance(simulator.resources["trace_source"], SimulatedTraceSource)
    assert isinstance(files.resources["trace_source"], FileTraceSource)
    # Every stage contributes its own assets; none is listed twice.
    per_stage = [
        {k for a in stage.definitions(ProjectResource().config()).assets for k in a.keys}
        for stage in STAGES
    ]
    assert all(per_stage)
    assert sum(len(s) for s in per_stage) == len(set().union(*per_stage))


def test_every_table_asset_is_its_record() -> None:
    graph = build_definitions(ProjectResource()).resolve_asset_graph()
    keys = {k.path[-1] for k in graph.get_all_asset_keys()}
    tables = {t.name: t for t in WAREHOUSE_TABLES}
    assert keys - NOT_TABLES <= set(tables)
    # every analyst table is written by an asset of its own name
    assert {t.name for t in ANALYST_TABLES} <= keys
    for name in keys - NOT_TABLES:
        node = graph.get(AssetKey(name))
        table = tables[name]
        assert node.description.startswith(table.comment)
        schema = node.metadata["dagster/column_schema"]
        schema = getattr(schema, "schema", schema)
        assert [c.name for c in schema.columns] == table.column_names
        for dep in node.parent_keys:
            assert dep.path[-1] in tables, f"{name} depends on {dep}, which is no table"
    # A view stands for the tables it reads.
    active_cases = next(v for v in SEAL_VIEWS if v.name == ACTIVE_CASES.name)
    assert deps_of([active_cases]) == [AssetKey(t.name) for t in active_cases.tables]


def test_renaming_a_table_in_records_is_a_one_line_change(small_sim: Path, tmp_path: Path) -> None:
    """The rename drill: `trace_sample` renamed in records/ alone (patched before anything
    else imports it); the daily job then writes, checks, and publishes the new name."""
    script = f"""
import warnings; warnings.filterwarnings("ignore")
import evals_pipeline.records as r
object.__setattr__(r.TRACE_SAMPLE, "name", "sampled_traces")   # the one line
from dagster import AssetKey
from evals_pipeline.definitions import defs
from evals_pipeline_tests.helpers import check_results, run_daily
from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.warehouse import connect, table_names
assert defs.resolve_asset_graph().has(AssetKey("sampled_traces"))
result = run_daily(__import__("pathlib").Path({str(small_sim)!r}), "2026-03-01", "2026-03-02")
assert result.success and all(check_results(result).values()), check_results(result)
for path in (warehouse_path(), analytics_path()):
    con = connect(path, read_only=True)
    names = table_names(con)
    assert "sampled_traces" in names and "trace_sample" not in names, (path, sorted(names))
    assert con.execute("SELECT count(*) FROM sampled_traces").fetchall()[0][0] > 0
    con.close()
print("renamed ok")
"""
    env = {**os.environ, "EVALS_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "renamed ok" in out.stdout, out.stderr[-3000:]


def _sql_literals_naming_tables(path: Path) -> list[str]:
    names = "|".join(
        sorted(
            (t.name for t in (*WAREHOUSE_TABLES, *SEAL_VIEWS, records.JUDGE_CACHE)),
            key=len,
            reverse=True,
        )
    )
    written = re.compile(rf"\b(FROM|JOIN|INTO|TABLE|UPDATE|DESCRIBE)\s+(\w+\.)?({names})\b")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in written.finditer(node.value):
                found.append(f"{path.name}:{node.lineno}: {m.group(0)}")
    return found


def test_no_sql_names_a_table_by_hand() -> None:
    """SQL names tables through their record (f"{TRACES}" or {{ TRACES }} in .sql models),
    so a rename in records/ reaches every query, in the package and in the tests."""
    files = [
        p
        for p in (*PACKAGE.rglob("*.py"), *(REPO_ROOT / "evals_pipeline_tests").rglob("*.py"))
        if p.parent.name != "records"
    ]
    found = [hit for p in files for hit in _sql_literals_naming_tables(p)]
    assert not found, found
    for model in PACKAGE.rglob("sql/*.sql"):
        text = model.read_text()
        assert "{{" in text, model
        for table in WAREHOUSE_TABLES:
            assert not re.search(rf"\b(FROM|JOIN)\s+{table.name}\b", text), (model, table)


def test_sql_models_load_by_name_and_refuse_unknown_records() -> None:
    reports = PACKAGE / "reports" / "assets.py"
    gap = load_sql(str(reports), "holdout_gap")
    assert f"FROM {ACTIVE_EVALUATION} a JOIN {HOLDOUT_EVALUATION} h" in gap
    assert render("SELECT * FROM {{ TRACE_SAMPLE }}") == f"SELECT * FROM {TRACE_SAMPLE.name}"
    with pytest.raises(KeyError, match="NOT_A_TABLE"):
        render("SELECT * FROM {{ NOT_A_TABLE }}")
    with pytest.raises(KeyError, match="DEFAULT_CATEGORIES"):
        render("SELECT {{ DEFAULT_CATEGORIES }}")


def test_the_warehouse_is_set_up_once_per_schema_and_upgrades_an_old_file(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    assert set_up(con) is True
    assert {t.name for t in WAREHOUSE_TABLES} | {SCHEMA_MARK} <= table_names(con)
    assert set_up(con) is False  # nothing to do the second time
    # A file from an older release: a column missing and another schema digest.
    con.execute(f"ALTER TABLE {TRACE_SAMPLE} DROP COLUMN weight")
    con.execute(f"UPDATE {SCHEMA_MARK} SET digest = 'older'")
    assert set_up(con) is True
    cols = {r[0] for r in con.execute(f"DESCRIBE {TRACE_SAMPLE}").fetchall()}
    assert "weight" in cols
    assert con.execute(f"SELECT digest FROM {SCHEMA_MARK}").fetchall() == [(schema_digest(),)]


def _decorated_asset_functions() -> list[tuple[str, str, int]]:
    out = []
    for path in sorted(PACKAGE.glob("*/assets.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = {
                getattr(d.func if isinstance(d, ast.Call) else d, "id", "")
                for d in node.decorator_list
            }
            if not names & {"asset", "multi_asset", "table_asset"}:
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring is the UI's description, not logic
            out.append((path.parent.name, node.name, body[-1].end_lineno - body[0].lineno + 1))
    return out


def test_asset_functions_are_wiring() -> None:
    """No asset function is longer than 40 lines of its own: the rules it applies are plain
    functions in its stage, tested directly."""
    functions = _decorated_asset_functions()
    assert len(functions) >= 25
    long = [f for f in functions if f[2] > 40]
    assert not long, long
