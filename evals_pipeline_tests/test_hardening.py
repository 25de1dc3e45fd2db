"""End to end, as an attacker and a careless operator would probe it: the seal after every
job in any order, an ensemble that loses two of its three judges, and PII and secrets that
must never reach a provider."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from starlette.testclient import TestClient

from evals_pipeline.definitions import defs
from evals_pipeline.judging.client import Call, LiteLLMJudgeClient, run_calls
from evals_pipeline.judging.rubrics import JSON_MODE, load_rubric, render_messages
from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.records import (
    ANALYST_TABLES,
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    RELEASE_GATES,
    REVIEW_ITEMS,
    REVIEW_QUEUE,
)
from evals_pipeline.review.app import AppSettings, create_app
from evals_pipeline.simulator.mock_server import MockConfig, MockServer
from evals_pipeline.simulator.traffic import SimulationConfig, simulate
from evals_pipeline_tests.helpers import (
    _resources,
    check_results,
    run_calibration,
    run_daily,
    run_quarterly,
    run_reports,
)

# Ten days across a quarter boundary: the second rotation draws its holdout after the
# review queues have shown production traces (and their references) to analysts.
ACROSS_QUARTERS = SimulationConfig(
    seed=23,
    start="2026-03-24",
    end="2026-04-02",
    traces_per_day=300,
    topics_per_category=30,
    n_users=500,
    label_count=150,
    malformed_rate=0.01,
)


def _review(root: Path, week: str) -> object:
    job = defs.resolve_job_def("evals_review")
    return job.execute_in_process(partition_key=week, resources=_resources(root))


def _holdout_strings() -> list[str]:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{HoldoutStore().path()}' AS h (READ_ONLY)")
        con.execute(f"ATTACH '{warehouse_path()}' AS w (READ_ONLY)")
        return [
            r[0]
            for r in con.execute(
                f"""SELECT DISTINCT s FROM (
                       SELECT unnest([c.input, c.output, c.reference_good, c.reference_borderline]) AS s
                       FROM h.{HOLDOUT_CASES} c JOIN w.{GOLDEN_POOLS} p ON p.case_id = c.case_id AND p.pool = 'holdout')
                   WHERE s IS NOT NULL"""
            ).fetchall()
        ]
    finally:
        con.close()


def _analyst_hits(path: Path, secrets: list[str]) -> list[str]:
    """Every analyst text column of the DuckDB file at `path` that contains a secret."""
    con = duckdb.connect(str(path), read_only=True)
    hits = []
    try:
        con.execute("CREATE TEMP TABLE secret (s VARCHAR)")
        con.executemany("INSERT INTO secret VALUES (?)", [[s] for s in secrets])
        present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for table in ANALYST_TABLES:
            if table.name not in present:
                continue
            for col in table.columns:
                if col.sql_type not in ("VARCHAR", "JSON"):
                    continue
                n = con.execute(
                    f"SELECT count(*) FROM {table.name} t JOIN secret ON contains(t.{col.name}::VARCHAR, secret.s)"
                ).fetchall()[0][0]
                if n:
                    hits.append(f"{path.name}:{table.name}.{col.name} ({n})")
    finally:
        con.close()
    return hits


def test_the_seal_holds_after_every_job_in_any_order(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> None:
    root = tmp_path_factory.mktemp("across")
    simulate(ACROSS_QUARTERS, root)
    labels = data_dir / "labels"
    labels.mkdir()
    for f in (root / "labels").glob("*.jsonl"):
        (labels / f.name).write_bytes(f.read_bytes())
    seal_checks: list[dict[str, bool]] = []

    def ran(result: object) -> None:
        assert result.success  # type: ignore[attr-defined]
        checks = check_results(result)  # type: ignore[arg-type]
        seal_checks.append(
            {k: v for k, v in checks.items() if k in ("holdout_sealed", "snapshot_sealed")}
        )

    ran(run_daily(root, "2026-03-24", "2026-04-02"))
    ran(run_quarterly(root, "2026-01-01"))
    ran(run_calibration(root))
    ran(_review(root, "2026-03-27"))  # the Friday batch of the last days of Q1
    ran(run_reports(root, "2026-01-01"))
    ran(run_quarterly(root, "2026-01-01"))  # again: nothing moves, the seal check re-runs
    ran(run_quarterly(root, "2026-04-01"))  # a new holdout drawn after the queues were shown
    ran(_review(root, "2026-03-27"))
    ran(run_calibration(root))
    ran(run_reports(root, "2026-04-01"))
    # every job checked the seal before publishing, and every check passed
    assert all(c.get("snapshot_sealed") is True for c in seal_checks)
    assert [c["holdout_sealed"] for c in seal_checks if "holdout_sealed" in c] == [True] * 3

    secrets = _holdout_strings()
    assert len(secrets) > 40
    assert _analyst_hits(analytics_path(), secrets) == []
    assert _analyst_hits(warehouse_path(), secrets) == []
    files = [
        data_dir / "golden" / "active.jsonl",
        data_dir / "golden" / "CHANGELOG.md",
        data_dir / "reports" / "latest.html",
    ]
    for f in files:
        text = f.read_text()
        assert not [s for s in secrets if s in text], f
    # the review app: every queued case page, as the expert sees it
    client = TestClient(create_app(AppSettings()), base_url="http://127.0.0.1:8765")
    client.post("/login", data={"annotator": "auditor"})
    con = duckdb.connect(str(analytics_path()), read_only=True)
    items = con.execute(f"SELECT queue, item_id FROM {REVIEW_ITEMS}").fetchall()
    con.close()
    assert len(items) > 20
    for queue, item_id in items:
        page = client.get(f"/case/{queue}/{item_id}")
        assert page.status_code == 200
        assert not [s for s in secrets if s in page.text], (queue, item_id)


def test_two_judges_down_leave_no_verdict_to_the_third(
    small_sim: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mock-not-a-secret")
    assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
    panel = ["openai/judge-a", "openai/judge-b", "openai/judge-c"]
    judge_config = {"config": {"judges": panel, "dimensional_rubric": ""}}
    # all three calibrated and trusted: only trusted judges vote, and the rule under test is
    # what the two failing ones leave to the third
    from evals_pipeline.judging.rubrics import load_rubric
    from evals_pipeline.records import JUDGE_CALIBRATION

    version = load_rubric("pass_fail").version
    with duckdb.connect(str(warehouse_path())) as con:
        con.executemany(
            f"INSERT INTO {JUDGE_CALIBRATION} (judge, rubric, rubric_version, split, category, trusted) "
            "VALUES (?, 'pass_fail', ?, 'test', 'all', true)",
            [[j, version] for j in panel],
        )
    with MockServer(MockConfig(latency_s=0.0, down_models=("judge-b", "judge-c"))) as server:
        resources = _resources(small_sim)
        resources["judge_client"] = LiteLLMJudgeClient(
            api_bases={
                **{m: server.api_base for m in panel},
                **resources["judge_client"].api_bases,
            },
            max_retries=1,
            backoff_s=0.01,
        )
        job = defs.resolve_job_def("evals_quarterly")
        result = job.execute_in_process(
            partition_key="2026-01-01",
            resources=resources,
            run_config={
                "ops": {
                    JUDGE_VERDICTS.name: judge_config,
                    "judge_ensemble_and_review_queue": judge_config,
                }
            },
        )
    assert result.success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        per_judge = dict(
            con.execute(
                f"SELECT judge, count(verdict) FROM {JUDGE_VERDICTS} WHERE rubric = 'pass_fail' GROUP BY 1"
            ).fetchall()
        )
        assert per_judge["openai/judge-a"] > 50 and per_judge["openai/judge-b"] == 0
        rows = con.execute(
            f"""SELECT verdict, status, n_valid, n_judges FROM {JUDGE_ENSEMBLE} WHERE rubric = 'pass_fail'"""
        ).fetchall()
        assert rows and all(n_judges == 3 for *_, n_judges in rows)
        # one judge of three is a minority: never an ensemble verdict
        assert all(v is None and s == "no_quorum" and n <= 1 for v, s, n, _ in rows)
        queued = con.execute(
            f"SELECT count(*) FROM {REVIEW_QUEUE} WHERE rubric = 'pass_fail' AND reason LIKE 'no_quorum%'"
        ).fetchall()[0][0]
        assert queued == len(rows)
    finally:
        con.close()
    # the reports leave them out, and the quorum gate says so and fails the decision
    assert run_reports(small_sim, "2026-01-01").success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        gates = dict(con.execute(f"SELECT gate, status FROM {RELEASE_GATES}").fetchall())
        evidence = con.execute(
            f"SELECT evidence FROM {RELEASE_GATES} WHERE gate = 'ensemble_quorum'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert gates["ensemble_quorum"] == "fail" and gates["decision"] == "fail"
    assert "have no ensemble verdict" in evidence


PLANTED = {
    "email": "dana.k@example.org",
    "phone": "4155550134",
    "intl_phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip": "10.1.2.3",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "openai": "sk-proj-AbCdEf0123456789AbCdEf0123456789XyZ",
    "anthropic": "sk-ant-api03-AbCdEf0123456789AbCdEf0123456789",
}


def test_no_pii_or_secret_reaches_the_provider(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "; ".join(f"{k}: {v}" for k, v in PLANTED.items())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mock-not-a-secret")
    with MockServer(MockConfig(latency_s=0.0)) as server:
        # a judge call built WITHOUT redaction: run_calls is the one point that redacts
        case = {"input": text, "reference_good": text, "reference_borderline": text}
        messages = render_messages(load_rubric("pass_fail"), case, f"Answer with {text}")
        client = LiteLLMJudgeClient(api_bases={"openai/mock-judge": server.api_base})
        _, stats = run_calls(
            client, duckdb.connect(), [Call("openai/mock-judge", messages, "judge", JSON_MODE)]
        )
        assert stats.redacted["secret"] >= 4 and stats.redacted["iban"] >= 1
        # the expert's critiques, sent for taxonomy suggestions through the review app
        monkeypatch.setenv("EVALS_TAXONOMY_MODEL", "openai/mock-judge")
        monkeypatch.setenv("OPENAI_API_BASE", server.api_base)
        monkeypatch.setenv("OPENAI_BASE_URL", server.api_base)
        folder = data_dir / "labels"
        folder.mkdir()
        with (folder / "review-dana.jsonl").open("w") as f:
            for i, (kind, value) in enumerate(PLANTED.items()):
                f.write(
                    json.dumps(
                        {
                            "subject_id": f"tr_{i}",
                            "annotator": "dana",
                            "verdict": "fail",
                            "critique": f"Leaks the customer's {kind} {value} in the answer",
                            "failure_mode": "leaks_pii",
                        }
                    )
                    + "\n"
                )
        app = TestClient(create_app(AppSettings()), base_url="http://127.0.0.1:8765")
        app.post("/login", data={"annotator": "dana"})
        app.post("/api/taxonomy/suggest", json={})
        sent = json.dumps(server.stats.bodies)
    assert server.stats.requests >= 2  # the judge call and the suggestion (with its retries)
    assert "Leaks the customer" in sent  # the critiques did go out...
    leaked = [k for k, v in PLANTED.items() if v in sent]
    assert leaked == []  # ...without any of the planted values


def test_a_killed_snapshot_build_leaves_nothing_behind_and_analysts_see_the_current_file(
    tmp_path: Path,
) -> None:
    from evals_pipeline.analytics.snapshot import (
        build_snapshot,
        open_snapshot,
        remove_stale_temporaries,
    )
    from evals_pipeline.records import RELEASE_GATES
    from evals_pipeline.warehouse import connect, ensure_tables

    target = tmp_path / "analytics.duckdb"
    # what kill -9 during a build leaves: the half-written file and its WAL
    stale = [
        tmp_path / ".analytics.duckdb.0123abcd.tmp",
        tmp_path / ".analytics.duckdb.0123abcd.tmp.wal",
    ]
    for f in stale:
        f.write_bytes(b"partial")
    other = tmp_path / "notes.tmp"
    other.write_text("not ours")
    assert sorted(remove_stale_temporaries(target)) == sorted(stale)
    assert not any(f.exists() for f in stale) and other.exists()

    wh = connect(tmp_path / "warehouse.duckdb")
    ensure_tables(wh, [RELEASE_GATES])
    build_snapshot(wh, target, [RELEASE_GATES])
    held = duckdb.connect(str(target), read_only=True)  # an analyst's open session
    wh.execute(f"INSERT INTO {RELEASE_GATES} (gate, status) VALUES ('decision', 'pass')")
    build_snapshot(wh, target, [RELEASE_GATES])
    # DuckDB's instance cache: a new connect() in the same process shares the old file
    cached = duckdb.connect(str(target), read_only=True)
    assert cached.execute(f"SELECT count(*) FROM {RELEASE_GATES}").fetchall() == [(0,)]
    fresh = open_snapshot(target)
    assert fresh.execute(f"SELECT count(*) FROM {RELEASE_GATES}").fetchall() == [(1,)]
    for c in (held, cached, fresh, wh):
        c.close()
