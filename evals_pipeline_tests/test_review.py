"""Review: taxonomy edits, label files, saturation, suggestions, the failure-mode table, the
queues on a simulated deployment, and the app's HTTP contract (errors, holdout, hiding)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from evals_pipeline.calibration.labels import load_labels
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.records import (
    CANDIDATE_OUTPUTS,
    FAILURE_MODE_DISTRIBUTION,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    JUDGE_VERDICTS,
    QUARANTINED_LABELS,
    REVIEW_ITEMS,
    REVIEW_QUEUE,
    TRACES,
    WEEKLY_REVIEW_SAMPLE,
)
from evals_pipeline.review.app import AppSettings, create_app
from evals_pipeline.review.distribution import write_failure_mode_distribution
from evals_pipeline.review.labelstore import LabelError, append_label, make_label
from evals_pipeline.review.suggest import suggest
from evals_pipeline.review.taxonomy import (
    StaleTaxonomy,
    TaxonomyError,
    edit_taxonomy,
    load_taxonomy,
    normalize_name,
    saturation,
)
from evals_pipeline.warehouse import connect, ensure_tables, set_up
from evals_pipeline_tests.review_fixtures import (
    HOLDOUT_CASE,
    JUDGE_SECRET,
    write_review_snapshot,
)

# ---- taxonomy ---------------------------------------------------------------------------


def test_taxonomy_edits_are_versioned_and_old_names_resolve(tmp_path: Path) -> None:
    path = tmp_path / "failure_modes.json"
    edit_taxonomy(
        "define", {"name": "Made Up Facts", "definition": "Invents facts."}, "dana", 0, path
    )
    edit_taxonomy("rename", {"name": "made_up_facts", "new_name": "hallucination"}, "dana", 1, path)
    edit_taxonomy("merge", {"sources": ["wrong_number"], "into": "hallucination"}, "lee", 2, path)
    tax = load_taxonomy(path)
    assert tax.version == 3
    assert list(tax.modes) == ["hallucination"]
    assert tax.modes["hallucination"]["definition"] == "Invents facts."
    assert tax.resolve("made_up_facts") == ("hallucination", True)
    assert tax.resolve("Wrong Number") == ("hallucination", True)
    assert tax.resolve("tone") == ("tone", False)
    assert tax.resolve(None) == ("unassigned", False)
    assert [h["action"] for h in tax.history] == ["define", "rename", "merge"]
    assert [h["by"] for h in tax.history] == ["dana", "dana", "lee"]
    # every version is kept beside the file
    versions = sorted(p.name for p in (tmp_path / "versions").iterdir())
    assert versions == [f"failure_modes.v000{i}.json" for i in (1, 2, 3)]
    assert json.loads((tmp_path / "versions" / versions[0]).read_text())["modes"] == {
        "made_up_facts": {"definition": "Invents facts.", "aliases": []}
    }


def test_a_stale_or_invalid_taxonomy_edit_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "failure_modes.json"
    edit_taxonomy("define", {"name": "tone", "definition": "Rude."}, "a", 0, path)
    with pytest.raises(StaleTaxonomy, match="version 1, your edit was made on version 0"):
        edit_taxonomy("define", {"name": "tone", "definition": "Curt."}, "b", 0, path)
    edit_taxonomy("define", {"name": "verbose", "definition": "Too long."}, "a", 1, path)
    with pytest.raises(TaxonomyError, match="already a mode or an alias"):
        edit_taxonomy("rename", {"name": "tone", "new_name": "verbose"}, "a", 2, path)
    with pytest.raises(TaxonomyError, match="not a usable failure mode name"):
        edit_taxonomy("define", {"name": "<script>", "definition": "x"}, "a", 2, path)
    with pytest.raises(TaxonomyError, match="unknown taxonomy action"):
        edit_taxonomy("delete", {"name": "tone"}, "a", 2, path)
    assert load_taxonomy(path).version == 2
    assert load_taxonomy(path).modes["tone"]["definition"] == "Rude."
    assert normalize_name(" Wrong-Steps ") == "wrong_steps"


def test_saturation_counts_new_modes_per_batch() -> None:
    reviewed = pd.DataFrame(
        {
            "labelled_at": pd.date_range("2026-01-01", periods=8, freq="h"),
            "verdict": ["fail", "fail", "pass", "fail", "fail", "pass", "fail", "fail"],
            "failure_mode": ["a", "b", None, "a", "c", None, "b", "a"],
        }
    )
    sat = saturation(load_taxonomy(Path("/nonexistent/x.json")), reviewed, batch_size=3)
    assert sat["new_modes"].tolist() == [2, 1, 0]
    assert sat["total_modes"].tolist() == [2, 3, 3]
    assert sat["reviewed"].tolist() == [3, 6, 8]
    assert sat["new"].tolist() == [["a", "b"], ["c"], []]


# ---- label files ------------------------------------------------------------------------


def test_labels_are_validated_like_the_pipeline_and_appended_per_annotator(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="a fail needs a critique"):
        make_label("tr_1", "dana", "fail", "  ", "", "weekly")
    with pytest.raises(LabelError, match="pass or fail"):
        make_label("tr_1", "dana", "maybe", "", "", "weekly")
    with pytest.raises(LabelError, match="annotator name"):
        make_label("tr_1", "../etc", "pass", "", "", "weekly")
    a = append_label(
        tmp_path, make_label("tr_1", "Dana K", "fail", "Wrong date.", "Wrong Date", "weekly")
    )
    b = append_label(tmp_path, make_label("tr_1", "lee", "pass", "", "", "weekly"))
    append_label(tmp_path, make_label("tr_2", "Dana K", "pass", "", "ignored on pass", "weekly"))
    assert (a.name, b.name) == ("review-dana-k.jsonl", "review-lee.jsonl")
    lines = [json.loads(x) for x in a.read_text().splitlines()]
    assert [x["subject_id"] for x in lines] == ["tr_1", "tr_2"]
    assert lines[0]["failure_mode"] == "wrong_date" and lines[1]["failure_mode"] is None
    # a crash mid-line leaves a partial line: the next label starts on a fresh line, so only
    # the broken line is quarantined and rows in = stored + quarantined
    with open(b, "a") as f:
        f.write('{"subject_id": "tr_3", "annot')
    append_label(tmp_path, make_label("tr_4", "lee", "pass", "", "", "weekly"))
    conn = connect(":memory:")
    ensure_tables(conn, [HUMAN_LABELS, QUARANTINED_LABELS])
    counts = load_labels(conn, tmp_path)
    assert counts == {"files": 2, "rows_in": 5, "stored": 4, "quarantined": 1}
    assert conn.execute(f"SELECT reason FROM {QUARANTINED_LABELS}").fetchall() == [
        ("malformed_json",)
    ]


# ---- LLM-assisted grouping ---------------------------------------------------------------


def test_the_offline_suggester_proposes_merging_names_for_the_same_failure(tmp_path: Path) -> None:
    critiques = {
        "hallucination": "States a refund window the policy does not have.",
        "made_up_policy": "States a refund window the policy does not have.",
        "wrong_steps": "Gives navigation steps that do not lead to the feature.",
    }
    items = [
        {"id": i, "critique": text, "failure_mode": mode}
        for i, (mode, text) in enumerate(
            [(m, t) for m, t in critiques.items()] * 3
            + [(None, "Refuses a harmless request about account settings.")] * 2
        )
    ]
    tax = load_taxonomy(tmp_path / "none.json")
    proposals, stats, error = suggest(
        tax, items, LiteLLMJudgeClient(), tmp_path / "cache.duckdb", SUGGESTER
    )
    assert error is None and stats.called == 1
    merges = [p for p in proposals if p.action == "merge"]
    assert len(merges) == 1
    assert {merges[0].into, *merges[0].sources} == {"hallucination", "made_up_policy"}
    # a name for the critiques nobody gave a mode, a definition for the undefined wrong_steps
    defines = {p.into: p for p in proposals if p.action == "define"}
    assert len(defines) == 2 and defines.pop("wrong_steps").critiques == 3
    [(name, unnamed)] = defines.items()
    assert unnamed.critiques == 2 and set(name.split("_")) <= {
        "account",
        "harmless",
        "request",
        "refuses",
        "settings",
    }
    # nothing is applied by suggesting; asking again is answered from the cache
    assert not (tmp_path / "none.json").exists()
    _, again, _ = suggest(tax, items, LiteLLMJudgeClient(), tmp_path / "cache.duckdb", SUGGESTER)
    assert again.called == 0 and again.cached == 1


# ---- failure_mode_distribution -----------------------------------------------------------


def test_failure_mode_distribution_resolves_aliases_and_counts_per_slice(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.duckdb")
    set_up(conn)
    conn.execute(
        f"""INSERT INTO {TRACES} (trace_id, category, app_version, sealed) VALUES
           ('t1', 'how_to', 'v1', false), ('t2', 'how_to', 'v2', false), ('t3', 'reasoning', 'v2', false),
           ('t4', 'reasoning', 'v2', false), ('t5', 'reasoning', 'v1', false), ('t6', 'how_to', 'v1', false)"""
    )
    labels = [  # subject, annotator, verdict, failure_mode, current
        ("t1", "dana", "fail", "made_up", True),
        ("t2", "dana", "fail", "hallucination", True),
        ("t3", "dana", "fail", "arithmetic", True),
        ("t4", "dana", "pass", None, True),
        ("t5", "dana", "fail", None, True),
        ("t6", "dana", "pass", None, True),
        # a second annotator on t3: the principal (dana, most labels) wins
        ("t3", "lee", "fail", "hallucination", True),
    ]
    for s, a, v, m, c in labels:
        conn.execute(
            f"INSERT INTO {HUMAN_LABELS} (subject_id, kind, annotator, verdict, critique, failure_mode, current) VALUES (?, 'pointwise', ?, ?, 'x', ?, ?)",
            [s, a, v, m, c],
        )
    path = tmp_path / "tax.json"
    edit_taxonomy("merge", {"sources": ["made_up"], "into": "hallucination"}, "dana", 0, path)
    write_failure_mode_distribution(conn, load_taxonomy(path), "dana")
    rows = {
        (r[0], r[2], r[3]): r
        for r in conn.execute(f"SELECT * FROM {FAILURE_MODE_DISTRIBUTION}").fetchall()
    }
    overall = rows[("hallucination", "all", "all")]
    assert overall[1] is True and overall[4] == 2  # defined, n (t1 via alias + t2)
    assert overall[5] == pytest.approx(2 / 4) and overall[6] == pytest.approx(2 / 6)
    assert (
        rows[("arithmetic", "all", "all")][4] == 1
        and rows[("arithmetic", "all", "all")][1] is False
    )
    assert rows[("unassigned", "reasoning", "v1")][4] == 1
    assert rows[("hallucination", "how_to", "all")][7:9] == (2, 3)  # failing, reviewed in how_to
    # shares within each slice add up to 1
    sums = conn.execute(
        f"SELECT category, app_version, sum(share) FROM {FAILURE_MODE_DISTRIBUTION} GROUP BY ALL"
    ).fetchall()
    assert all(abs(s - 1) < 1e-9 for *_, s in sums)


SUGGESTER = "offline/taxonomy-suggester"


# ---- the app over HTTP --------------------------------------------------------------------

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture
def client(data_dir: Path) -> TestClient:
    write_review_snapshot(analytics_path())
    app = create_app(AppSettings())
    c = TestClient(app, base_url=LOCAL)
    c.post("/login", data={"annotator": "dana"})
    return c


def test_the_app_explains_unknown_queues_cases_and_missing_snapshots(data_dir: Path) -> None:
    c = TestClient(create_app(AppSettings()), base_url=LOCAL)
    c.post("/login", data={"annotator": "dana"})
    r = c.get("/")
    assert r.status_code == 503 and "There is no analytics snapshot" in r.text
    write_review_snapshot(analytics_path())
    r = c.get("/queue/nope")
    assert r.status_code == 404 and "There is no queue &#39;nope&#39;" in r.text
    r = c.get("/case/weekly/tr_missing")
    assert r.status_code == 404 and "may have left the queue when the queues were rebuilt" in r.text
    anonymous = TestClient(create_app(AppSettings()), base_url=LOCAL)
    assert anonymous.post("/api/label", json={}).status_code == 401


def test_holdout_cases_are_refused_even_when_a_queue_points_at_one(client: TestClient) -> None:
    # a graduated case (active now, its source trace sealed in the reservoir) may be reviewed
    assert client.get("/case/disagreement/gc_1%7Cv3").status_code == 200
    r = client.get(f"/case/disagreement/{HOLDOUT_CASE}%7Cv3")
    assert r.status_code == 403 and "sealed holdout" in r.text
    assert "How do I export" not in r.text  # no content of the case
    r = client.post(
        "/api/label",
        json={"queue": "disagreement", "item_id": f"{HOLDOUT_CASE}|v3", "verdict": "pass"},
    )
    assert r.status_code == 403
    assert not (Path(client.app.state.review.s.labels) / "review-dana.jsonl").exists()


def test_verdicts_stay_hidden_until_the_expert_decides(client: TestClient) -> None:
    page = client.get("/case/weekly/tr_a")
    assert page.status_code == 200 and JUDGE_SECRET not in page.text
    assert client.get("/api/verdicts/weekly/tr_a").status_code == 403
    r = client.post("/api/label", json={"queue": "weekly", "item_id": "tr_a", "verdict": "fail"})
    assert r.status_code == 400 and "needs a critique" in r.json()["error"]
    r = client.post(
        "/api/label",
        json={
            "queue": "weekly",
            "item_id": "tr_a",
            "verdict": "fail",
            "critique": "Wrong menu.",
            "failure_mode": "wrong steps",
        },
    )
    assert r.status_code == 200 and r.json()["verdicts"][0]["critique"] == JUDGE_SECRET
    assert client.get("/api/verdicts/weekly/tr_a").json()["verdicts"][0]["critique"] == JUDGE_SECRET
    assert JUDGE_SECRET in client.get("/case/weekly/tr_a").text
    home = client.get("/")
    assert '<td class="num done">1</td>' in home.text and '<td class="num left">2</td>' in home.text
    # the queue link now skips the labelled case
    assert (
        client.get("/queue/weekly", follow_redirects=False).headers["location"]
        == "/case/weekly/tr_inject"
    )


def test_fields_are_escaped_and_oversized_fields_cut_with_a_notice(client: TestClient) -> None:
    page = client.get("/case/weekly/tr_inject")
    assert "<script>window.__pwned" not in page.text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text
    assert "&lt;i&gt;not italic&lt;/i&gt; &amp; friends" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    big = client.get("/case/weekly/tr_big")
    assert "shown: first 20000 of 50000 characters" in big.text
    assert "x" * 20_001 not in big.text


def test_a_label_for_a_case_that_left_a_rebuilt_queue_is_refused_as_stale(
    client: TestClient, data_dir: Path
) -> None:
    page = client.get("/case/weekly/tr_big")
    assert page.status_code == 200
    # the queues are rebuilt without tr_big
    from datetime import datetime

    write_review_snapshot(analytics_path(), datetime(2026, 10, 2, 6, 0), drop=("tr_big",))
    r = client.post(
        "/api/label",
        json={
            "queue": "weekly",
            "item_id": "tr_big",
            "verdict": "pass",
            "prepared_at": "2026-09-25T06:00:00",
        },
    )
    assert r.status_code == 409 and "Your label was NOT saved" in r.json()["error"]
    assert client.get("/case/weekly/tr_big").status_code == 404
    r = client.post(
        "/api/label", content=b'{"queue": "weekly"}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415


def test_taxonomy_page_edits_with_optimistic_versions(client: TestClient) -> None:
    for item, mode in (("tr_a", "made up"), ("tr_inject", "hallucination")):
        client.post(
            "/api/label",
            json={
                "queue": "weekly",
                "item_id": item,
                "verdict": "fail",
                "critique": f"bad {item}",
                "failure_mode": mode,
            },
        )
    page = client.get("/taxonomy")
    assert "made_up" in page.text and "undefined" in page.text
    r = client.post(
        "/api/taxonomy",
        json={
            "action": "merge",
            "detail": {"sources": ["made_up"], "into": "hallucination"},
            "version": 0,
        },
    )
    assert r.json() == {"ok": True, "version": 1}
    r = client.post(
        "/api/taxonomy",
        json={"action": "define", "detail": {"name": "x", "definition": "y"}, "version": 0},
    )
    assert r.status_code == 409 and r.json()["version"] == 1
    page = client.get("/taxonomy")
    assert "aliases: made_up" in page.text
    r = client.post("/api/taxonomy/suggest", json={})
    assert r.status_code == 200 and r.json()["critiques"] == 2


# ---- the queues on a simulated deployment --------------------------------------------------


def test_review_queues_on_a_simulated_deployment(small_sim: Path, data_dir: Path) -> None:
    from evals_pipeline.definitions import defs
    from evals_pipeline_tests.helpers import (
        _resources,
        check_results,
        run_calibration,
        run_daily,
        run_quarterly,
    )

    assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
    assert run_quarterly(small_sim, "2026-01-01").success
    labels = data_dir / "labels"
    labels.mkdir()
    for f in (small_sim / "labels").glob("*.jsonl"):
        (labels / f.name).write_bytes(f.read_bytes())
    assert run_calibration(small_sim).success
    job = defs.resolve_job_def("evals_review")
    config = {"ops": {WEEKLY_REVIEW_SAMPLE.name: {"config": {"size": 20, "seed": 5}}}}
    result = job.execute_in_process(
        partition_key="2026-02-27", run_config=config, resources=_resources(small_sim)
    )
    assert result.success and check_results(result) == {
        "review_items_never_holdout": True,
        "snapshot_sealed": True,
    }
    conn = connect(warehouse_path(), read_only=True)
    try:
        weekly = conn.execute(
            f"""SELECT w.trace_id, t.sealed, t.partition_date FROM {WEEKLY_REVIEW_SAMPLE} w JOIN {TRACES} t USING (trace_id)"""
        ).fetchall()
        assert len(weekly) == 20 and len({w[0] for w in weekly}) == 20
        assert not any(w[1] for w in weekly)
        assert all(str(w[2]) <= "2026-03-05" for w in weekly)  # the week Fri 02-27 .. Thu 03-05
        labelled = {r[0] for r in conn.execute(f"SELECT subject_id FROM {HUMAN_LABELS}").fetchall()}
        assert not labelled & {w[0] for w in weekly}
        queues = dict(
            conn.execute(f"SELECT queue, count(*) FROM {REVIEW_ITEMS} GROUP BY 1").fetchall()
        )
        assert (
            queues["weekly"] == 20 and queues["disagreement"] > 0 and queues["calibration_gap"] > 0
        )
        # calibration-gap items land in the splits that are measured
        splits = conn.execute(
            f"""SELECT DISTINCT split FROM (SELECT i.item_id,
                 CASE WHEN u < 0.2 THEN 'train' WHEN u < 0.6 THEN 'dev' ELSE 'test' END AS split
               FROM (SELECT item_id, hash(xor(hash(item_id), hash(424242::BIGINT)))::DOUBLE / 18446744073709551616.0 AS u
                     FROM {REVIEW_ITEMS} WHERE queue = 'calibration_gap') i)"""
        ).fetchall()
        assert {s[0] for s in splits} <= {"dev", "test"}
        # every trace item was judged, so the app can reveal verdicts after the decision
        unjudged = conn.execute(
            f"SELECT count(*) FROM {REVIEW_ITEMS} WHERE subject = 'trace' AND reference_good IS NOT NULL AND json_array_length(judge_verdicts) = 0"
        ).fetchall()[0][0]
        assert unjudged == 0
        before = conn.execute(f"SELECT queue, item_id FROM {REVIEW_ITEMS} ORDER BY ALL").fetchall()
    finally:
        conn.close()
    # idempotent: the same week again gives the same queues
    assert job.execute_in_process(
        partition_key="2026-02-27", run_config=config, resources=_resources(small_sim)
    ).success
    conn = connect(warehouse_path(), read_only=True)
    try:
        assert (
            conn.execute(f"SELECT queue, item_id FROM {REVIEW_ITEMS} ORDER BY ALL").fetchall()
            == before
        )
        dist = conn.execute(
            f"SELECT sum(n), any_value(failing) FROM {FAILURE_MODE_DISTRIBUTION} WHERE category = 'all' AND app_version = 'all'"
        ).fetchall()[0]
        assert dist[0] == dist[1] > 0
    finally:
        conn.close()


def test_concurrent_appends_keep_every_line_whole(tmp_path: Path) -> None:
    """Two tabs of one expert and a second expert, writing at once: nothing lost or torn."""
    from concurrent.futures import ThreadPoolExecutor

    def write(who: str, n: int) -> None:
        for i in range(n):
            append_label(
                tmp_path, make_label(f"tr_{who}_{i}", who, "fail", "x" * 3000, "m", "weekly")
            )

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, ["dana", "dana", "lee"], [150, 150, 150]))
    conn = connect(":memory:")
    ensure_tables(conn, [HUMAN_LABELS, QUARANTINED_LABELS])
    assert load_labels(conn, tmp_path) == {
        "files": 2,
        "rows_in": 450,
        "stored": 450,
        "quarantined": 0,
    }


def test_trusted_judges_splits_come_before_their_errors_in_the_disagreement_queue(
    tmp_path: Path,
) -> None:
    from evals_pipeline.review.queues import QueueSettings, queue_items

    conn = connect(tmp_path / "w.duckdb")
    set_up(conn)
    conn.execute(
        "CREATE TEMP TABLE _references (trace_id VARCHAR, reference_good VARCHAR, reference_borderline VARCHAR)"
    )
    votes = {  # case -> (trusted_a, trusted_b, untrusted): the ensemble queues what trusted judges
        # split on or failed to answer
        **{f"c_trusted_error_{i}": ("pass", None, "fail") for i in range(6)},
        "c_trusted_split": ("pass", "fail", "pass"),
        "c_holdout": ("pass", "fail", "pass"),
    }
    for case, vs in votes.items():
        pool = "holdout" if case == "c_holdout" else "active"
        conn.execute(
            f"INSERT INTO {GOLDEN_POOLS} (case_id, trace_id, category, pool) VALUES (?, ?, 'how_to', ?)",
            [case, f"t_{case}", pool],
        )
        if pool == "active":  # golden_cases never holds holdout content
            conn.execute(
                f"INSERT INTO {GOLDEN_CASES} (case_id, trace_id, category, input) VALUES (?, ?, 'how_to', 'q')",
                [case, f"t_{case}"],
            )
        conn.execute(
            f"INSERT INTO {CANDIDATE_OUTPUTS} (case_id, app_version, output) VALUES (?, 'v2', 'answer')",
            [case],
        )
        conn.execute(
            f"INSERT INTO {REVIEW_QUEUE} VALUES (?, 'v2', 'how_to', 'pass_fail', '1', ?, '2026-09-01')",
            [case, "judge_error: b" if case.startswith("c_trusted_error") else "split_vote"],
        )
        for judge, v in zip(("a", "b", "generic"), vs, strict=True):
            conn.execute(
                f"INSERT INTO {JUDGE_VERDICTS} (case_id, app_version, judge, rubric, rubric_version, verdict) VALUES (?, 'v2', ?, 'pass_fail', '1', ?)",
                [case, judge, v],
            )
    for judge, trusted in (("a", True), ("b", True), ("generic", False)):
        conn.execute(
            f"INSERT INTO {JUDGE_CALIBRATION} (judge, rubric, rubric_version, split, category, trusted) VALUES (?, 'pass_fail', '1', 'test', 'all', ?)",
            [judge, trusted],
        )
    rows = queue_items(conn, QueueSettings(), "dana").fetchall()
    order = [(r[1], r[-1]) for r in sorted(rows, key=lambda r: r[-1]) if r[0] == "disagreement"]
    assert order[0][0] == "c_trusted_split|v2"  # first of 7, whatever the hash order
    assert {item for item, _ in order[1:]} == {f"c_trusted_error_{i}|v2" for i in range(6)}
    reasons = {r[1]: r[-2] for r in rows}  # and no holdout case
    assert "trusted judges split 1 pass / 1 fail" in reasons["c_trusted_split|v2"]
    assert "judge_error: b" in reasons["c_trusted_error_0|v2"]
    assert "split" not in reasons["c_trusted_error_0|v2"]


def test_labels_on_disagreement_cases_are_train_only(tmp_path: Path) -> None:
    """Chosen because the judges disagreed, they must not measure the judges (dev/test)."""
    from evals_pipeline.calibration.labels import split_sql

    subjects = [f"gc_tr_{i:04d}|v{1 + i % 3}" for i in range(60)]
    for s in subjects:
        append_label(tmp_path, make_label(s, "dana", "pass", "", "", "disagreement"))
    conn = connect(":memory:")
    ensure_tables(conn, [HUMAN_LABELS, QUARANTINED_LABELS])
    load_labels(conn, tmp_path)
    assert conn.execute(f"SELECT DISTINCT split FROM {HUMAN_LABELS}").fetchall() == [("train",)]
    # by the hash alone most of them would have landed in dev or test
    by_hash = conn.execute(
        f"SELECT count(*) FILTER (WHERE {split_sql('subject_id')} <> 'train') FROM {HUMAN_LABELS}"
    ).fetchall()
    assert by_hash[0][0] > 30


# ---- hardening: hosts, origins, methods, bodies, names, depth ------------------------------


def test_requests_for_another_host_name_are_refused(client: TestClient) -> None:
    # DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1
    r = client.get("/", headers={"Host": "evil.example:8765"})
    assert r.status_code == 403 and "answers only to" in r.text
    assert client.get("/case/weekly/tr_a", headers={"Host": "evil.example"}).status_code == 403
    for local in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert client.get("/", headers={"Host": local}).status_code == 200, local


def test_state_changes_are_posts_and_cross_origin_posts_are_refused(data_dir: Path) -> None:
    write_review_snapshot(analytics_path())
    c = TestClient(create_app(AppSettings()), base_url=LOCAL)
    # login and logout by GET change nothing any more
    assert c.get("/login", params={"annotator": "dana"}).status_code == 405
    assert "annotator" not in c.cookies
    evil = {"Origin": "http://evil.example:8765"}
    r = c.post("/login", data={"annotator": "mallory"}, headers=evil)
    assert r.status_code == 403 and "annotator" not in c.cookies
    r = c.post(
        "/login", data={"annotator": "dana"}, headers={"Origin": LOCAL}, follow_redirects=False
    )
    assert r.status_code == 303 and c.cookies.get("annotator") == "dana"
    label = {"queue": "weekly", "item_id": "tr_a", "verdict": "pass"}
    assert c.post("/api/label", json=label, headers=evil).status_code == 403
    # a sandboxed frame or a file:// page says `Origin: null`; the app's own pages never do
    assert c.post("/api/label", json=label, headers={"Origin": "null"}).status_code == 403
    assert c.get("/").headers["referrer-policy"] == "same-origin"
    assert not (data_dir / "labels").exists() or not list((data_dir / "labels").iterdir())
    assert c.get("/logout").status_code == 405 and c.cookies.get("annotator") == "dana"
    c.post("/logout")
    assert "annotator" not in c.cookies


def test_oversized_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    big = b'{"queue": "weekly", "critique": "' + b"x" * 200_000 + b'"}'
    r = client.post("/api/label", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    # no length given (chunked): cut at the limit all the same
    chunks = (b"x" * 65_536 for _ in range(40))
    r = client.post("/api/label", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/login", content=b"annotator=" + b"a" * 100_000).status_code == 413


def test_a_real_server_answers_413_to_a_400_mb_post_without_reading_it(data_dir: Path) -> None:
    import contextlib
    import http.client
    from urllib.parse import urlsplit

    from evals_pipeline.review.browser import serving

    write_review_snapshot(analytics_path())
    with serving(AppSettings()) as url:
        where = urlsplit(url)
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        conn.putrequest("POST", "/api/label")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(400 * 1024 * 1024))
        conn.putheader("Cookie", "annotator=dana")
        conn.endheaders()
        # 64 KB of the announced 400 MB, then wait for the answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            conn.send(b"x" * 65_536)
        response = conn.getresponse()
        assert response.status == 413
        conn.close()


def test_malformed_bodies_get_a_400_naming_the_field(client: TestClient) -> None:
    def tax(body: object) -> tuple[int, str]:
        r = client.post("/api/taxonomy", json=body)
        return r.status_code, r.json()["error"]

    status, error = tax(
        {"action": "merge", "detail": {"sources": "abc", "into": "x"}, "version": 0}
    )
    assert status == 400 and "sources" in error  # a string is not merged letter by letter
    assert tax({"action": "explode", "detail": {}})[0] == 400
    assert tax({"action": "define", "detail": {"name": ["x"], "definition": "d"}})[0] == 400
    assert tax({"action": "define", "detail": "x"})[0] == 400
    assert tax([1, 2])[0] == 400
    assert (
        tax({"action": "define", "detail": {"name": "x", "definition": "d"}, "version": "0"})[0]
        == 400
    )
    r = client.post(
        "/api/taxonomy",
        content=b"[" * 100_00 + b"]" * 100_00,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = client.post("/api/label", json={"queue": "weekly", "item_id": ["tr_a"], "verdict": "pass"})
    assert r.status_code == 400 and "item_id" in r.json()["error"]
    r = client.post(
        "/api/label", json={"queue": "weekly", "item_id": "tr_a", "verdict": "pass", "x": 1}
    )
    assert r.status_code == 400 and "x" in r.json()["error"]


def test_any_json_depth_renders_and_the_queue_moves_on(data_dir: Path) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    write_review_snapshot(analytics_path(), extra=({"item_id": "tr_deep", "metadata": deep},))
    c = TestClient(create_app(AppSettings()), base_url=LOCAL)
    c.post("/login", data={"annotator": "dana"})
    page = c.get("/case/weekly/tr_deep")
    assert page.status_code == 200 and "[[[[" in page.text
    r = c.post("/api/label", json={"queue": "weekly", "item_id": "tr_deep", "verdict": "pass"})
    assert r.status_code == 200 and r.json()["ok"]


def test_annotator_names_are_normalised_and_ambiguous_ones_refused(
    client: TestClient, data_dir: Path
) -> None:
    from evals_pipeline.review.labelstore import LabelError, annotator_file, check_annotator

    assert check_annotator("Dana") == check_annotator("dana") == "dana"
    assert check_annotator("Dana  Smith") == check_annotator("dana.smith") == "dana-smith"
    for bad in ("dana.", ".dana", "-", "dana/../x", "da\nna", "", "dana_"):
        with pytest.raises(LabelError):
            check_annotator(bad)
    assert annotator_file(data_dir, "DANA") == annotator_file(data_dir, "dana")
    c = TestClient(create_app(AppSettings()), base_url=LOCAL)
    assert c.post("/login", data={"annotator": "dana."}).status_code == 400
    c.post("/login", data={"annotator": "Dana"})
    assert c.cookies.get("annotator") == "dana"
    r = c.post("/api/label", json={"queue": "weekly", "item_id": "tr_a", "verdict": "pass"})
    assert r.json()["label"]["annotator"] == "dana" and r.json()["file"] == "review-dana.jsonl"


def test_the_sealed_sessions_files_start_the_holdout_review_job(data_dir: Path) -> None:
    """A new label or view line in the sealed area starts evals_holdout_review; the same
    files again start nothing."""
    import json as _json

    from dagster import DagsterInstance, build_sensor_context

    from evals_pipeline.paths import holdout_review_dir
    from evals_pipeline.review.definitions import holdout_review_sensor

    instance = DagsterInstance.ephemeral()
    quiet = list(holdout_review_sensor(build_sensor_context(instance=instance)))
    assert [type(r).__name__ for r in quiet] == ["SkipReason"]
    views = holdout_review_dir() / "views"
    views.mkdir(parents=True)
    (views / "views-dana.jsonl").write_text(_json.dumps({"view_id": "v1"}) + "\n")
    context = build_sensor_context(instance=instance)
    requests = list(holdout_review_sensor(context))
    assert [type(r).__name__ for r in requests] == ["RunRequest"]
    assert requests[0].tags["files"] == "views/views-dana.jsonl"
    again = list(
        holdout_review_sensor(build_sensor_context(instance=instance, cursor=context.cursor))
    )
    assert [type(r).__name__ for r in again] == ["SkipReason"]
