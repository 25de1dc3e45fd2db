"""Engine spark (issue 19): the same traffic through both engines, and the whole pipeline with
`engine: spark` from the project file alone.

Spark runs here for real: pyspark from PyPI on Debian's Java runtime (`make test` installs it
like Chromium), a local[2] master. The fault corpus of test_faults.py and six simulated days
go through the daily job once per engine, each into its own data directory.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from evals_pipeline.project import ProjectError, ProjectResource, load_project
from evals_pipeline.records import (
    CANDIDATE_OUTPUTS,
    JUDGE_VERDICTS,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    RELEASE_GATES,
    SEGMENT_REPORT,
    TRACE_FEEDBACK,
    TRACE_SAMPLE,
    TRACES,
)
from evals_pipeline.reports.correlation import CELL_ONLINE_SQL, PER_TRACE_SQL
from evals_pipeline.reports.online import monthly_query, online_query, per_trace_query
from evals_pipeline.simulator.traffic import simulate
from evals_pipeline.spark_lake import EngineUnavailable, session, spark_resource
from evals_pipeline.warehouse import EngineMismatch, connect
from evals_pipeline_tests.conftest import SMALL
from evals_pipeline_tests.helpers import (
    lean_project_dict,
    run_calibration,
    run_daily,
    run_quarterly,
    run_reports,
)
from evals_pipeline_tests.test_faults import DAY as FAULT_DAY
from evals_pipeline_tests.test_faults import build_corpus

# Without Java the tests skip, except in CI (.ci/run sets EVALS_REQUIRE_SPARK), where they fail.
pytestmark = pytest.mark.skipif(
    shutil.which("java") is None and not os.environ.get("EVALS_REQUIRE_SPARK"),
    reason="no Java runtime: `make test` installs Debian's default-jre-headless",
)


def project(folder: Path, engine: str) -> ProjectResource:
    cfg = lean_project_dict()
    cfg["engine"] = engine
    cfg["spark"] = {"master": "local[2]"}
    path = folder / f"evals.{engine}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return ProjectResource(path=str(path))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated days (with malformed rows and duplicates) and, on one of them, the fault
    corpus (files that cannot be read, bad numbers and times, hostile lines)."""
    root = tmp_path_factory.mktemp("spark_traffic")
    simulate(SMALL, root)
    corpus = tmp_path_factory.mktemp("fault_corpus")
    build_corpus(corpus)
    day = root / "traces" / f"dt={FAULT_DAY}"
    for item in (corpus / "traces" / f"dt={FAULT_DAY}").iterdir():
        target = day / item.name
        if item.is_dir():
            target.mkdir()
        else:
            shutil.copy(item, target)
    return root


@pytest.fixture(scope="module")
def engines(traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The daily job over the six days on each engine, each in its own data directory; the
    Spark run twice (a re-run replaces the days)."""
    out = {}
    mp = pytest.MonkeyPatch()
    try:
        for engine in ("duckdb", "spark"):
            data = tmp_path_factory.mktemp(f"data_{engine}")
            mp.setenv("EVALS_DATA_DIR", str(data))
            proj = project(data, engine)
            result = run_daily(traffic, SMALL.start, SMALL.end, project=proj)
            assert result.success, engine
            out[engine] = data
        mp.setenv("EVALS_DATA_DIR", str(out["spark"]))
        out["spark_first"] = _tables(out["spark"])
        assert run_daily(traffic, SMALL.start, SMALL.end, project=project(out["spark"], "spark"))
    finally:
        mp.undo()
    return out


COUNTS = {
    TRACES.name: f"SELECT partition_date, 'stored' AS reason, count(*) FROM {TRACES} GROUP BY ALL",
    QUARANTINED_TRACES.name: f"SELECT partition_date, reason, count(*) FROM {QUARANTINED_TRACES} GROUP BY ALL",
    TRACE_FEEDBACK.name: f"SELECT partition_date, 'stored', count(*) FROM {TRACE_FEEDBACK} GROUP BY ALL",
    QUARANTINED_FEEDBACK.name: f"SELECT partition_date, reason, count(*) FROM {QUARANTINED_FEEDBACK} GROUP BY ALL",
    # Per stratum: size, traffic (N_c) and the weights' sum, which must equal it.
    TRACE_SAMPLE.name: f"""SELECT partition_date, stratum, category, count(*), any_value(category_traffic),
                                  round(sum(weight), 6) FROM {TRACE_SAMPLE} GROUP BY ALL""",
}


def _tables(data: Path) -> dict[str, list[tuple]]:
    with connect(data / "warehouse.duckdb", read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall()) for name, sql in COUNTS.items()}


def test_both_engines_store_quarantine_and_sample_the_same_counts(
    engines: dict[str, Path],
) -> None:
    duck, spark = _tables(engines["duckdb"]), _tables(engines["spark"])
    reasons = {r for _, r, _ in spark[QUARANTINED_TRACES.name]}
    # The traffic exercises what it should: planted faults and the corpus' every kind.
    assert {"malformed_json", "missing_field", "wrong_type", "unreadable_file"} <= reasons
    assert {"unsupported_file", "out_of_range", "ts_outside_partition"} <= reasons
    assert {"duplicate_trace_id", "unknown_category"} & reasons
    for name in COUNTS:
        assert spark[name] == duck[name], name
    # Re-running the days on Spark replaced them: the same counts again.
    assert engines["spark_first"] == spark


def test_the_samples_differ_only_in_which_rows_the_hash_draws(engines: dict[str, Path]) -> None:
    """Same sizes, floors and weight sums per stratum (above); the rows themselves differ,
    since DuckDB's hash() and Spark's xxhash64 order the traces differently."""
    ids: dict[str, list[tuple]] = {}
    engines_seen: dict[str, set[str]] = {}
    for engine in ("duckdb", "spark"):
        with connect(engines[engine] / "warehouse.duckdb", read_only=True) as con:
            ids[engine] = sorted(
                con.execute(f"SELECT stratum, trace_id FROM {TRACE_SAMPLE}").fetchall()
            )
            engines_seen[engine] = {
                r[0] for r in con.execute(f"SELECT DISTINCT engine FROM {TRACE_SAMPLE}").fetchall()
            }
    assert ids["duckdb"] != ids["spark"] and len(ids["duckdb"]) == len(ids["spark"])
    assert engines_seen["duckdb"] == {f"duckdb {duckdb.__version__}"}
    (spark_engine,) = engines_seen["spark"]
    assert spark_engine.startswith("spark 4.")
    # The lake holds the days as Parquet partitions; the warehouse file has no traces table.
    lake = engines["spark"] / "lake"
    assert (lake / TRACES.name / f"partition_date={SMALL.start}").is_dir()
    with connect(engines["spark"] / "warehouse.duckdb", read_only=True) as con:
        kinds = dict(
            con.execute(
                "SELECT table_name, 'table' FROM duckdb_tables() UNION ALL "
                "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
    assert kinds[TRACES.name] == "view" and kinds[TRACE_SAMPLE.name] == "view"


def test_the_whole_pipeline_runs_on_spark_from_the_project_file_alone(
    engines: dict[str, Path], traffic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = engines["spark"]
    monkeypatch.setenv("EVALS_DATA_DIR", str(data))
    proj = project(data, "spark")
    assert run_quarterly(traffic, "2026-01-01", project=proj).success
    shutil.copytree(traffic / "labels", data / "labels")  # the experts' labels of the traffic
    assert run_calibration(traffic, project=proj).success
    assert run_reports(traffic, "2026-01-01", project=proj).success
    with connect(data / "warehouse.duckdb", read_only=True) as con:
        for table in (CANDIDATE_OUTPUTS, JUDGE_VERDICTS, SEGMENT_REPORT, RELEASE_GATES):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0, table
    # Analysts see the traffic tables in their snapshot like any other table.
    with connect(data / "analytics.duckdb", read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {TRACES}").fetchall()[0][0] > 1000
    # The online signals over all traffic, aggregated on Spark, equal DuckDB's over the lake.
    spark = (session(spark_resource(proj.config())), str(data / "lake"))
    window = {"start": date(2026, 1, 1), "end": date(2026, 4, 1)}
    with connect(data / "warehouse.duckdb", read_only=True) as con:
        for sql, run in (
            (CELL_ONLINE_SQL, online_query),
            (PER_TRACE_SQL, per_trace_query),
        ):
            duck = run(con, None, sql, window)
            on_spark = run(con, spark, sql, window)
            assert len(duck) > 0
            pd.testing.assert_frame_equal(
                duck.sort_values(list(duck.columns[:3])).reset_index(drop=True),
                on_spark.sort_values(list(duck.columns[:3])).reset_index(drop=True),
                check_dtype=False,
            )
        judges = ["offline/reference-judge"]
        pd.testing.assert_frame_equal(
            monthly_query(con, None, judges, window["end"]),
            monthly_query(con, spark, judges, window["end"]),
            check_dtype=False,
        )


def test_a_warehouse_of_one_engine_refuses_the_other(
    engines: dict[str, Path], traffic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(engines["duckdb"]))
    with pytest.raises(EngineMismatch, match="engine duckdb"):
        run_daily(traffic, SMALL.start, project=project(engines["duckdb"], "spark"))


def test_spark_without_java_or_with_span_exports_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineUnavailable, match="default-jre-headless"):
        session(object())  # type: ignore[arg-type]
    cfg = lean_project_dict() | {"engine": "spark"}
    cfg["simulator"]["writes"] = "otel"
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ProjectError, match="span export is read by engine duckdb"):
        load_project(path)
