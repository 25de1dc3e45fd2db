"""The holdout judged like the active pool, inside the seal: a candidate overfitted to the
active pool shows a significant active-holdout gap through the trusted judges and fails the
`holdout` gate; the same version untuned passes; nothing of the holdout reaches the warehouse
but aggregates. Layer 3: the principal expert reviews a sample of those holdout answers in
the review app's sealed session; every view is a logged holdout read, the labels stay in the
holdout store, and only counts and the judges' agreement with the expert come out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score
from starlette.testclient import TestClient

from evals_pipeline.definitions import defs
from evals_pipeline.ingest.sources import FileTraceSource
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.sealing import seal_violations
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    HOLDOUT_GAP,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_PANEL_OUTPUTS,
    HOLDOUT_PANEL_VERDICTS,
    HOLDOUT_REVIEW,
    HOLDOUT_REVIEW_ITEMS,
    HOLDOUT_REVIEW_LABELS,
    HOLDOUT_REVIEW_QUARANTINE,
    HUMAN_LABELS,
    JUDGE_CACHE,
    POOL_EVENTS,
    RELEASE_GATES,
)
from evals_pipeline.review.app import AppSettings, create_app
from evals_pipeline.review.labelstore import check_annotator
from evals_pipeline.review.sealed import BLIND_VERSION, SealedQueueStore
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.warehouse import Warehouse, connect
from evals_pipeline_tests.helpers import lean_project_dict, run_daily

REPO = Path(__file__).resolve().parents[1]
QUARTER = "2026-01-01"
PANEL = {"ops": {"holdout_panel_evaluation": {"config": {"force": True}}}}
UNPARTITIONED = ("evals_calibration", "evals_holdout_review")
LOCAL = "http://127.0.0.1"
CRITIQUE = "SEALED-CRITIQUE"
# pool events other than the collection's own logged read of the aggregates
EVENTS = f"SELECT event, reason FROM {POOL_EVENTS} WHERE reason NOT LIKE '%agreement of the judges%' ORDER BY ALL"


def project_file(tmp: Path, tuned: bool) -> ProjectResource:
    """The embedded project with v3 as candidate, or v3-tuned (v3 overfitted to the exported
    active pool) in its place."""
    cfg = lean_project_dict()
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
        **({} if job in UNPARTITIONED else {"partition_key": QUARTER}),
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
        out["layer3"] = review_the_holdout(data / "holdout_review")
        run("evals_holdout_review", small_sim, plain)
        with connect(warehouse_path(), read_only=True) as conn:
            out["events_after_first"] = conn.execute(EVENTS).fetchall()
        run("evals_holdout_review", small_sim, plain)  # again: no view is logged twice
        with connect(warehouse_path(), read_only=True) as conn:
            out["events_after_second"] = conn.execute(EVENTS).fetchall()
            out["holdout_review"] = conn.execute(f"SELECT * FROM {HOLDOUT_REVIEW}").df()
            out["view_reads"] = conn.execute(
                f"SELECT case_id, reason FROM {POOL_EVENTS} WHERE event = 'holdout_read' AND reason LIKE 'layer 3 review: %[view %]'"
            ).df()
            out["violations"] = seal_violations(conn)
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


# ---- Layer 3: the expert's sealed review of the holdout -----------------------------------


def review_the_holdout(area: Path) -> dict[str, object]:
    """The principal expert in the sealed session: opens and labels some queued answers (one
    twice), agreeing with the judges on some and not on others; an intruder is refused; two
    bad lines land in the sealed label file."""
    assert (area / "queue.duckdb").exists(), "the rotation queued the holdout for review"
    store = SealedQueueStore(area)
    principal, ids = store.principal(), store.queue_ids("holdout")
    client = TestClient(create_app(AppSettings(sealed=area)), base_url=LOCAL)
    client.post("/login", data={"annotator": "mallory"})
    refused = client.get(f"/case/holdout/{ids[0]}")
    client.post("/login", data={"annotator": principal})
    pages, labels = [], {}
    for i, item in enumerate(ids[:8]):
        page = client.get(f"/case/holdout/{item}")
        pages.append(page)
        verdict = "pass" if i % 3 else "fail"
        r = client.post(
            "/api/label",
            json={
                "queue": "holdout",
                "item_id": item,
                "verdict": verdict,
                "critique": f"{CRITIQUE}-{i}" if verdict == "fail" else "",
            },
        )
        assert r.status_code == 200, r.text
        labels[item] = (verdict, r.json()["verdicts"])
    client.get(f"/case/holdout/{ids[0]}")  # a second look
    label_file = next((area / "labels").glob("*.jsonl"))
    with label_file.open("a") as f:
        f.write(
            json.dumps({"subject_id": "h-not-queued", "annotator": principal, "verdict": "pass"})
        )
        f.write("\n{broken line\n")
    return {
        "principal": principal,
        "queued": len(ids),
        "refused": (refused.status_code, refused.text),
        "pages": pages,
        "labels": labels,
        "views": len(pages) + 1,
        "taxonomy": client.get("/taxonomy").status_code,
    }


def test_the_holdout_review_session_admits_the_principal_and_blinds_the_version(
    judged: dict,
) -> None:
    layer3 = judged["layer3"]
    assert layer3["principal"] and layer3["queued"] > 0
    status, text = layer3["refused"]
    assert status == 403 and "principal expert" in text
    for page in layer3["pages"]:
        assert page.status_code == 200 and BLIND_VERSION in page.text
        assert "sealed holdout session" in page.text
    # no taxonomy editing or suggestion model in the sealed session
    assert layer3["taxonomy"] == 404


def test_every_view_of_the_holdout_is_a_logged_read(judged: dict) -> None:
    layer3, reads = judged["layer3"], judged["view_reads"]
    assert len(reads) == layer3["views"]
    assert reads["case_id"].notna().all()
    assert reads["reason"].str.contains(check_annotator(layer3["principal"])).all()
    # collected twice: the second run logged no view again and queued nothing again (its
    # own read of the aggregates is logged each time)
    assert judged["events_after_second"] == judged["events_after_first"]


def test_only_counts_and_agreement_leave_the_sealed_review(judged: dict) -> None:
    layer3, table = judged["layer3"], judged["holdout_review"]
    expected = []
    for judge in sorted({v["judge"] for _, vs in layer3["labels"].values() for v in vs}):
        pairs = [
            (verdict, v["verdict"])
            for verdict, vs in layer3["labels"].values()
            for v in vs
            if v["judge"] == judge and v["verdict"]
        ]
        expected.append((judge, pairs))
    rows = table.set_index("judge")
    for judge, pairs in expected:
        row = rows.loc[judge]
        assert row["n"] == len(pairs)
        assert row["agreement"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
        human, machine = zip(*pairs, strict=True)
        if len(set(human) | set(machine)) > 1:
            assert row["kappa"] == pytest.approx(cohen_kappa_score(human, machine))
    assert "panel" in rows.index
    assert (table["queued"] == layer3["queued"]).all()
    assert (table["labelled"] == len(layer3["labels"])).all()
    assert (table["views"] == layer3["views"]).all()
    assert (table["viewed"] == len(layer3["labels"])).all()
    assert (table["quarantined"] == 2).all()
    assert list(table.columns) == HOLDOUT_REVIEW.column_names
    assert judged["violations"] == []


def test_the_expert_labels_stay_in_the_holdout_store(judged: dict) -> None:
    data, layer3 = judged["data"], judged["layer3"]
    store = duckdb.connect(str(data / "holdout.duckdb"), read_only=True)
    try:
        kept = store.execute(
            f"SELECT subject_id, verdict FROM {HOLDOUT_REVIEW_LABELS.name}"
        ).fetchall()
        quarantined = store.execute(
            f"SELECT reason FROM {HOLDOUT_REVIEW_QUARANTINE.name} ORDER BY reason"
        ).fetchall()
        queued = store.execute(f"SELECT count(*) FROM {HOLDOUT_REVIEW_ITEMS.name}").fetchall()
    finally:
        store.close()
    assert dict(kept) == {k: v[0] for k, v in layer3["labels"].items()}
    assert len(quarantined) == 2 and ("not_a_queued_holdout_answer",) in quarantined
    assert queued[0][0] == layer3["queued"]
    # nothing of the sealed review in any warehouse or snapshot table, nor in the ordinary labels
    for name in ("warehouse.duckdb", "analytics.duckdb"):
        con = duckdb.connect(str(data / name), read_only=True)
        try:
            for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                frame = con.execute(f'SELECT * FROM "{table}"').df()
                text = frame.select_dtypes(include="object").astype(str)
                assert not text.apply(lambda c: c.str.contains(CRITIQUE)).any().any(), table
                ids = set(layer3["labels"])
                assert not text.isin(ids).any().any(), (name, table)
            labelled = con.execute(f"SELECT DISTINCT subject_id FROM {HUMAN_LABELS}").df()
            assert not set(labelled["subject_id"]) & set(layer3["labels"])
        finally:
            con.close()
    assert not any(CRITIQUE in p.read_text() for p in (data / "labels").glob("*"))
    assert pd.api.types.is_integer_dtype(judged["holdout_review"]["views"])


def test_an_earlier_rotation_is_not_judged_after_its_window(tmp_path: Path) -> None:
    """A re-run or backfill of an earlier quarter, once judges are trusted, skips its holdout
    (the window has passed); asking for it with force is refused loudly."""
    import logging
    from datetime import date

    from evals_pipeline.judging.rubrics import load_rubric
    from evals_pipeline.pools.evaluation import HoldoutAccessError
    from evals_pipeline.pools.holdout_panel import PanelRun, evaluate
    from evals_pipeline.warehouse import ensure_tables

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_tables(con, [POOL_EVENTS, HOLDOUT_PANEL_EVALUATION])
    for q in ("2026-01-01", "2026-04-01"):
        con.execute(
            f"INSERT INTO {POOL_EVENTS} (event_at, run_id, quarter, event, reason) "
            "VALUES (now(), 'r', ?, 'rotation_complete', 'test')",
            [q],
        )
    run = PanelRun(
        client=None,  # type: ignore[arg-type]  # never called: nothing is judged
        versions=[object()],  # type: ignore[list-item]
        judges=["offline/reference-judge"],
        rubric=load_rubric("pass_fail"),
    )
    log = logging.getLogger("test")
    assert evaluate(con, "store", date(2026, 1, 1), run, False, log, "r") is False
    with pytest.raises(HoldoutAccessError, match="latest rotation"):
        evaluate(con, "store", date(2026, 1, 1), run, True, log, "r")
