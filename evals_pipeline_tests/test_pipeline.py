"""The Dagster code location end to end on a small simulation: definitions load, a multi-day
backfill runs as one run, re-materializing is idempotent, and analysts' readers never block."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, Definitions, ExecuteInProcessResult

from evals_pipeline.definitions import defs
from evals_pipeline.ingest.definitions import daily_job
from evals_pipeline.paths import REPO_ROOT, analytics_path, warehouse_path
from evals_pipeline.records import (
    ANALYST_TABLES,
    ANNOTATOR_AGREEMENT,
    ASSERTION_RESULTS,
    BT_RATINGS,
    CALIBRATION_TEST_USES,
    CANDIDATE_OUTPUTS,
    CORRECTED_PASS_RATES,
    GOLDEN_POOLS,
    HOLDOUT_EVALUATION,
    HOLDOUT_GAP,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    PAIRWISE_VERDICTS,
    POOL_EVENTS,
    POOL_SIZES,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    RELEASE_GATES,
    REVIEW_QUEUE,
    SEGMENT_REPORT,
    TRACE_FEEDBACK,
    TRACE_SAMPLE,
    TRACES,
)
from evals_pipeline_tests.helpers import check_results, run_daily, run_quarterly

CONTRACT = {TRACES.name, TRACE_FEEDBACK.name, QUARANTINED_TRACES.name, TRACE_SAMPLE.name}
DAILY_TABLES = (
    TRACES.name,
    TRACE_FEEDBACK.name,
    QUARANTINED_TRACES.name,
    QUARANTINED_FEEDBACK.name,
    TRACE_SAMPLE.name,
)


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("evals_daily").partitions_def is not None
    assert defs.resolve_schedule_def("evals_daily_schedule").job_name == daily_job.name
    assert defs.resolve_schedule_def("evals_review_schedule").job_name == "evals_review"
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key} has no description"
        assert node.group_name != "default", f"{key} has no group"
        assert node.kinds, f"{key} has no kinds"
    assert {AssetKey(t) for t in CONTRACT} <= set(graph.get_all_asset_keys())
    # Multi-day backfills run as one run.
    assert graph.get(AssetKey(TRACES.name)).backfill_policy.max_partitions_per_run is None


def test_workspace_loads_with_the_dagster_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "EVALS_DATA_DIR": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def ran(small_sim: Path, data_dir: Path) -> Path:
    """The whole small simulation ingested and sampled in one run."""
    result = run_daily(small_sim, "2026-03-01", "2026-03-06")
    assert result.success
    assert check_results(result) == {
        "traces_expectations": True,
        "trace_feedback_expectations": True,
        "trace_sample_floors_and_weights": True,
        # the drift alarms stay quiet: no golden set yet, six days of history
        "golden_set_fresh": True,
        "category_mix_stable": True,
        "snapshot_sealed": True,
    }
    return data_dir


def _table_digest(con: duckdb.DuckDBPyConnection, table: str) -> tuple:
    cols = ", ".join(next(t for t in ANALYST_TABLES if t.name == table).column_names)
    return con.execute(f"SELECT count(*), sum(hash({cols})) FROM {table}").fetchall()[0]


def test_single_run_backfill_fills_the_contract(ran: Path, small_sim: Path) -> None:
    con = duckdb.connect(str(analytics_path()), read_only=True)
    tables = {
        r[0]: r[1]
        for r in con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
    }
    assert set(tables) >= CONTRACT
    assert all(tables[t] for t in CONTRACT), "every table carries a comment"
    undocumented = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND comment IS NULL"
    ).fetchall()
    assert undocumented == []
    days = con.execute(f"SELECT DISTINCT partition_date FROM {TRACES} ORDER BY 1").fetchall()
    assert len(days) == 6
    # In = stored + quarantined, per file, against the raw files themselves.
    manifest_rows = con.execute(
        f"SELECT (SELECT count(*) FROM {TRACES}) + (SELECT count(*) FROM {QUARANTINED_TRACES})"
    ).fetchall()[0][0]
    raw_jsonl = sum(
        sum(1 for line in p.read_bytes().split(b"\n") if line.strip())
        for p in small_sim.glob("traces/dt=*/web.jsonl")
    )
    raw_parquet = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{small_sim}/traces/dt=*/api.parquet')"
    ).fetchall()[0][0]
    assert manifest_rows == raw_jsonl + raw_parquet
    # Floors and weights in every partition.
    rows = con.execute(
        f"""WITH s AS (SELECT partition_date, category, count(*) n, sum(weight) w FROM {TRACE_SAMPLE}
                      WHERE stratum = 'traffic' GROUP BY ALL),
                t AS (SELECT partition_date, category, count(*) n FROM {TRACES} GROUP BY ALL),
                d AS (SELECT partition_date, sum(n) total FROM s GROUP BY ALL)
           SELECT t.partition_date, t.category, coalesce(s.n, 0), s.w, t.n, d.total
           FROM t LEFT JOIN s USING (partition_date, category) JOIN d USING (partition_date)"""
    ).fetchall()
    assert len(rows) == 6 * 5
    for day, cat, n, w, traffic, total in rows:
        assert w == pytest.approx(traffic), (day, cat)
        assert n >= min(traffic, int(0.15 * total)), (day, cat)
    con.close()


def test_rematerializing_a_partition_changes_nothing(ran: Path, small_sim: Path) -> None:
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    before = {t: _table_digest(con, t) for t in DAILY_TABLES}
    con.close()
    assert run_daily(small_sim, "2026-03-03").success
    assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    after = {t: _table_digest(con, t) for t in DAILY_TABLES}
    con.close()
    assert after == before


def test_sample_config_changes_the_sample(ran: Path, small_sim: Path) -> None:
    config = {
        "ops": {
            TRACE_SAMPLE.name: {
                "config": {"size": 20, "floor": 0.2, "seed": 99, "flashlight_size": 0}
            }
        }
    }
    assert run_daily(small_sim, "2026-03-02", run_config=config).success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    got = con.execute(
        f"SELECT stratum, count(*), min(seed) FROM {TRACE_SAMPLE} WHERE partition_date = '2026-03-02' GROUP BY 1"
    ).fetchall()
    assert got == [("traffic", 20, 99)]
    con.close()


READER = textwrap.dedent(
    f"""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(con.execute("SELECT count(*) FROM {TRACE_SAMPLE}").fetchall()[0][0], flush=True)
    sys.stdin.readline()  # hold the snapshot open until the test says so
    print(con.execute("SELECT count(*) FROM {TRACE_SAMPLE}").fetchall()[0][0], flush=True)
    """
)


def test_an_open_analyst_connection_never_blocks_a_run(ran: Path, small_sim: Path) -> None:
    snapshot = analytics_path()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(snapshot)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = int(reader.stdout.readline())
        config = {"ops": {TRACE_SAMPLE.name: {"config": {"size": 10}}}}
        result = run_daily(small_sim, "2026-03-01", "2026-03-06", run_config=config)
        assert result.success  # the reader's open file did not fail the run
        reader.stdin.write("\n")
        reader.stdin.flush()
        still = int(reader.stdout.readline())
        assert reader.wait(timeout=60) == 0
    finally:
        reader.kill()
    assert still == before  # the reader kept its consistent (old) snapshot
    fresh = duckdb.connect(str(snapshot), read_only=True)
    assert (
        fresh.execute(f"SELECT count(*) FROM {TRACE_SAMPLE}").fetchall()[0][0] < before
    )  # new readers see the new one
    fresh.close()
    leftovers = [p.name for p in snapshot.parent.iterdir() if p.name.endswith((".tmp", ".wal"))]
    assert leftovers == []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, small_sim: Path) -> Iterator[Path]:
    """One data directory for the quarterly, calibration and reports tests below, which build
    on each other in file order (ingested, rotated twice, then calibrated, then reported): a
    fresh deployment per test ran the same jobs four times over."""
    data = tmp_path_factory.mktemp("pipeline_world")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(data))
    try:
        assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
        yield data
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def rotated(world: Path, small_sim: Path) -> dict[str, object]:
    """The first quarterly run and, on the same data, a second one (nothing to do)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(world))
    try:
        first = run_quarterly(small_sim, "2026-01-01")
        changelog = (world / "golden" / "CHANGELOG.md").read_bytes()
        second = run_quarterly(small_sim, "2026-01-01")
    finally:
        mp.undo()
    return {"first": first, "second": second, "changelog": changelog}


@pytest.fixture
def in_world(world: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALS_DATA_DIR", str(world))
    return world


def test_quarterly_job_rotates_evaluates_exports_and_reruns_cleanly(
    rotated: dict, in_world: Path
) -> None:
    ran, first, second = in_world, rotated["first"], rotated["second"]
    assert first.success
    assert check_results(first) == {
        "holdout_sealed": True,
        "snapshot_sealed": True,
        "every_holdout_view_logged": True,
    }
    con = duckdb.connect(str(analytics_path()), read_only=True)
    sizes = dict(con.execute(f"SELECT pool, sum(cases) FROM {POOL_SIZES} GROUP BY 1").fetchall())
    # Six days of a small topic bank run short of unique questions: the split still holds.
    assert set(sizes) == {"active", "holdout"} and sizes["holdout"] > 20
    assert sizes["holdout"] / (sizes["active"] + sizes["holdout"]) < 0.5
    assert (
        con.execute(f"SELECT sum(n) FROM {HOLDOUT_EVALUATION}").fetchall()[0][0] == sizes["holdout"]
    )
    con.close()
    assert (ran / "golden" / "active.jsonl").read_text().count("\n") == sizes["active"]
    assert (ran / "holdout.duckdb").exists()
    # A re-run changes no pool and takes no second look at the holdout.
    assert second.success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    reads = con.execute(
        f"SELECT count(*) FROM {POOL_EVENTS} WHERE reason LIKE 'holdout evaluation%'"
    ).fetchall()[0][0]
    moves = con.execute(f"SELECT count(*) FROM {POOL_EVENTS} WHERE case_id IS NOT NULL").fetchall()[
        0
    ][0]
    con.close()
    assert reads == 1 and moves == sizes["active"] + sizes["holdout"]
    assert (ran / "golden" / "CHANGELOG.md").read_bytes() == rotated["changelog"]


def _made(result, node: str) -> int:
    (mat,) = result.asset_materializations_for_node(node)
    return mat.metadata["calls_made"].value


def test_judging_in_the_quarterly_job_is_complete_and_free_to_rerun(
    rotated: dict, in_world: Path
) -> None:
    first = rotated["first"]
    assert first.success
    assert _made(first, JUDGE_VERDICTS.name) > 0 and _made(first, CANDIDATE_OUTPUTS.name) > 0
    con = duckdb.connect(str(analytics_path()), read_only=True)
    counts = dict(
        con.execute(
            f"""SELECT 'verdicts', count(DISTINCT judge) FROM {JUDGE_VERDICTS} UNION ALL
               SELECT 'ensemble', count(*) FROM {JUDGE_ENSEMBLE} UNION ALL
               SELECT 'queue', count(*) FROM {REVIEW_QUEUE} UNION ALL
               SELECT 'verdicts_given', count(verdict) FROM {JUDGE_ENSEMBLE} UNION ALL
               SELECT 'not_too_few', count(*) FILTER (WHERE status <> 'too_few_trusted') FROM {JUDGE_ENSEMBLE} UNION ALL
               SELECT 'pairwise', count(*) FROM {PAIRWISE_VERDICTS} UNION ALL
               SELECT 'ratings', count(*) FROM {BT_RATINGS} UNION ALL
               SELECT 'assertions', count(DISTINCT subject) FROM {ASSERTION_RESULTS} UNION ALL
               SELECT 'errors', count(error) FROM {JUDGE_VERDICTS}"""
        ).fetchall()
    )
    holdout_in_scores = con.execute(
        f"""SELECT count(*) FROM (SELECT case_id FROM {CANDIDATE_OUTPUTS} UNION ALL SELECT case_id FROM {JUDGE_VERDICTS}
           UNION ALL SELECT case_id FROM {PAIRWISE_VERDICTS}) WHERE case_id IN (SELECT case_id FROM {GOLDEN_POOLS} WHERE pool <> 'active')"""
    ).fetchall()[0][0]
    con.close()
    # no judge is calibrated yet: every output is judged and kept, but only trusted judges
    # vote, so there is no ensemble verdict and nothing to queue until a calibration run
    assert counts["verdicts"] == 3 and counts["ensemble"] > 0
    assert counts["verdicts_given"] == counts["not_too_few"] == counts["queue"] == 0
    assert (
        counts["pairwise"] > 0
        and counts["ratings"] == 6
        and counts["assertions"] == 2
        and counts["errors"] == 0
    )
    assert holdout_in_scores == 0
    second = rotated["second"]
    for node in (CANDIDATE_OUTPUTS.name, JUDGE_VERDICTS.name, PAIRWISE_VERDICTS.name):
        assert _made(second, node) == 0, node


@pytest.fixture(scope="module")
def calibrated(rotated: dict, world: Path, small_sim: Path) -> ExecuteInProcessResult:
    """The experts' labels delivered to the rotated world, and its first calibration run."""
    import shutil

    from evals_pipeline_tests.helpers import run_calibration

    (world / "labels").mkdir()
    for f in (small_sim / "labels").glob("*.jsonl"):
        shutil.copy(f, world / "labels" / f.name)
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(world))
    try:
        return run_calibration(small_sim)
    finally:
        mp.undo()


def test_calibration_job_measures_judges_once_and_gates_trust(
    calibrated: ExecuteInProcessResult, in_world: Path, small_sim: Path
) -> None:
    from evals_pipeline_tests.helpers import run_calibration

    assert calibrated.success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    status = dict(
        con.execute(
            f"SELECT judge, trusted FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all'"
        ).fetchall()
    )
    looks = con.execute(f"SELECT judge, forced FROM {CALIBRATION_TEST_USES} ORDER BY 1").fetchall()
    corrected = con.execute(
        f"SELECT DISTINCT calibration_status FROM {CORRECTED_PASS_RATES}"
    ).fetchall()
    agreement = con.execute(
        f"SELECT annotator_a, annotator_b, n FROM {ANNOTATOR_AGREEMENT}"
    ).fetchall()
    con.close()
    assert set(status) == {
        "offline/reference-judge",
        "offline/reference-judge-b",
        "offline/generic-judge",
        "sklearn/logistic-features",
    }
    assert status["offline/generic-judge"] is False
    assert looks == sorted((j, False) for j in status)
    assert {c for (c,) in corrected} <= {"trusted", "untrusted"}
    assert agreement and agreement[0][:2] == ("sim_expert_a", "sim_expert_b")
    # The test split is not looked at again...
    assert run_calibration(small_sim).success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    assert con.execute(f"SELECT count(*) FROM {CALIBRATION_TEST_USES}").fetchall()[0][0] == 4
    con.close()
    # ...unless forced, and then the look is recorded as forced.
    forced = {"ops": {JUDGE_CALIBRATION.name: {"config": {"force_test_look": True}}}}
    assert run_calibration(small_sim, forced).success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    assert (
        con.execute(f"SELECT count(*) FROM {CALIBRATION_TEST_USES} WHERE forced").fetchall()[0][0]
        == 4
    )
    con.close()


def _untrusted_votes_change_nothing(small_sim: Path) -> None:
    """Turn every verdict of the untrusted judge around, rebuild the ensemble (the calibration
    job does) and the report: no ensemble verdict and no release gate changes."""
    from evals_pipeline.records import JUDGE_CALIBRATION, JUDGE_ENSEMBLE, JUDGE_VERDICTS
    from evals_pipeline_tests.helpers import run_calibration, run_reports

    def state() -> tuple[list, list]:
        with duckdb.connect(str(warehouse_path()), read_only=True) as con:
            return (
                con.execute(
                    f"SELECT case_id, app_version, rubric, verdict, status, scores::VARCHAR FROM {JUDGE_ENSEMBLE} ORDER BY ALL"
                ).fetchall(),
                con.execute(
                    f"SELECT gate, status, evidence FROM {RELEASE_GATES} ORDER BY 1"
                ).fetchall(),
            )

    before = state()
    with duckdb.connect(str(warehouse_path())) as con:
        untrusted = [
            r[0]
            for r in con.execute(
                f"SELECT judge FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' AND NOT trusted"
            ).fetchall()
        ]
        assert untrusted, "the small simulation has an untrusted judge"
        flipped = con.execute(
            f"""UPDATE {JUDGE_VERDICTS} SET verdict = CASE verdict WHEN 'pass' THEN 'fail' ELSE 'pass' END
                WHERE verdict IS NOT NULL AND list_contains(?, judge)""",
            [untrusted],
        ).fetchall()[0][0]
    assert flipped > 100
    assert run_calibration(small_sim).success and run_reports(small_sim, "2026-01-01").success
    after = state()
    assert after[0] == before[0] and after[1] == before[1]


def test_reports_job_writes_the_gates_and_an_html_page(
    calibrated: ExecuteInProcessResult, in_world: Path, small_sim: Path
) -> None:
    import re

    from evals_pipeline_tests.helpers import run_reports

    ran = in_world
    assert calibrated.success
    result = run_reports(small_sim, "2026-01-01")
    assert result.success
    con = duckdb.connect(str(analytics_path()), read_only=True)
    gates = dict(con.execute(f"SELECT gate, status FROM {RELEASE_GATES}").fetchall())
    levels = {r[0] for r in con.execute(f"SELECT DISTINCT level FROM {SEGMENT_REPORT}").fetchall()}
    gap = con.execute(f"SELECT count(*) FROM {HOLDOUT_GAP}").fetchall()[0][0]
    con.close()
    assert set(gates) == {
        "layer1",
        "segment_regression",
        "large_changes",
        "holdout",
        "judge_trusted",
        "ensemble_quorum",
        "shadow",
        "canary",
        "decision",
    }
    # the generic judge is not trusted: it does not vote, and the gate stands on the others
    assert gates["judge_trusted"] == "pass"
    _untrusted_votes_change_nothing(small_sim)
    assert levels == {"cell", "category", "overall"}
    assert gap > 0
    page = (ran / "reports" / "latest.html").read_text()
    assert len(re.findall(r'<img alt="plot" src="data:image/png;base64,', page)) == 4
    assert page.count("<table") >= 5 and "segment_regression" in page
    # the root-cause table: the simulated experts' failure modes, per category
    assert "Failure modes by category" in page and "hallucinated_fact" in page
    # the judges' biases, with the self-preference column, are in the report
    assert "Judge biases" in page and "self_preference_risk_with" in page
    # the online gates have their sections (no shadow or canary window in six March days)
    assert "Shadow period" in page and "Canary: online signals" in page
    assert gates["shadow"] == gates["canary"] == "not_evaluated"
    # a second report a quarter later: both runs stay in the history tables, and the page
    # shows the trend over the two quarters and what changed since the first run
    import json

    from evals_pipeline.records import RELEASE_GATES_HISTORY, SEGMENT_REPORT_HISTORY

    assert run_reports(small_sim, "2026-04-01").success
    con = duckdb.connect(str(analytics_path()), read_only=True)
    runs = con.execute(
        f"SELECT partition, count(DISTINCT run_id) FROM {RELEASE_GATES_HISTORY} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    seg = con.execute(f"SELECT count(DISTINCT partition) FROM {SEGMENT_REPORT_HISTORY}").fetchall()[
        0
    ][0]
    current = con.execute(f"SELECT count(*) FROM {RELEASE_GATES}").fetchall()[0][0]
    con.close()
    # 2026-01-01 was reported twice (before and after the untrusted judge's votes turned)
    assert runs == [("2026-01-01", 2), ("2026-04-01", 1)] and seg == 2
    assert current == 9  # the current view holds one run's gates
    page = (ran / "reports" / "latest.html").read_text()
    data = json.loads(
        re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page).group(1)
    )
    trend = data["pass_rate_trend"]
    assert {"2026-01-01", "2026-04-01"} <= set(trend[0])
    overall = [r for r in trend if r["category"] == "all"]
    assert overall and all(r["2026-01-01"] is not None for r in overall)
    assert {r["what"] for r in data["since_last_run"]} >= {"gate decision", "gate holdout"}
    assert data["judge_trend"] and data["judge_trend"][0]["rubric_version"]
    assert "Since the last run" in page and "Pass rate per version over time" in page
