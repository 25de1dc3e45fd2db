"""Golden pools: the 70/30 split, idempotent and atomic rotations, retirement, the audit log,
the holdout evaluation guard, the export, and sealing (no holdout string in analyst tables)."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from evals_pipeline.definitions import defs
from evals_pipeline.ingest.validation import (
    FEEDBACK_STREAM,
    TRACE_STREAM,
    IngestRules,
    Reservoir,
    ingest_days,
)
from evals_pipeline.pools.evaluation import HoldoutAccessError, evaluate_holdout
from evals_pipeline.pools.export import export_active_pool
from evals_pipeline.pools.references import ReviewedFileReferences
from evals_pipeline.pools.rotation import RotationOrderError, RotationSettings, rotate
from evals_pipeline.pools.sealing import refresh_fingerprints, seal_violations
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.records import (
    ANALYST_TABLES,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_EVALUATION,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_REVIEW,
    HOLDOUT_STORE_TABLES,
    POOL_EVENTS,
    POOL_SIZES,
    QUARANTINED_TRACES,
    TRACES,
)
from evals_pipeline.sampling.stratified import SampleSettings, write_trace_sample
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.simulator.traffic import SimulationConfig, simulate
from evals_pipeline.warehouse import connect, ensure_tables, set_up

QUARTERS_SIM = SimulationConfig(
    seed=5,
    start="2026-01-01",
    end="2026-09-30",
    traces_per_day=60,
    topics_per_category=60,
    n_users=800,
    label_count=100,
    malformed_rate=0.005,
)
Q1, Q2, Q3, Q4 = date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)
SETTINGS = RotationSettings(new_cases=100, active_cap=1000)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three quarters of traffic ingested (with the reservoir) and sampled, built once."""
    root = tmp_path_factory.mktemp("quarters")
    sim = root / "traffic"
    simulate(QUARTERS_SIM, sim)
    con = connect(root / "warehouse.duckdb")
    set_up(con)
    store = HoldoutStore(database=str(root / "holdout.duckdb"))
    days = QUARTERS_SIM.days()
    with store.attached(con) as alias:
        for stream, folder in ((TRACE_STREAM, "traces"), (FEEDBACK_STREAM, "feedback")):
            files = {d: sorted((sim / folder / f"dt={d}").glob("*")) for d in days}
            ingest_days(
                con, stream, files, IngestRules(), sim, Reservoir(alias, store.reservoir_share)
            )
    write_trace_sample(con, days, SampleSettings(size=20, flashlight_size=5))
    con.close()
    return root, sim


class Pools:
    """A private copy of the built warehouse and holdout store for one test."""

    def __init__(self, built: tuple[Path, Path], tmp: Path) -> None:
        root, self.sim = built
        for name in ("warehouse.duckdb", "holdout.duckdb"):
            shutil.copy(root / name, tmp / name)
        self.store = HoldoutStore(database=str(tmp / "holdout.duckdb"))
        self.con = connect(tmp / "warehouse.duckdb")
        self.alias_cm = self.store.attached(self.con)
        self.alias = self.alias_cm.__enter__()
        self.refs = SimulatorReferences(root=str(self.sim))

    def rotate(self, quarter: date, settings: RotationSettings = SETTINGS, **kw: object):
        end = date(quarter.year + (quarter.month == 10), (quarter.month + 2) % 12 + 1, 1)
        return rotate(
            self.con, self.alias, quarter, end, settings, f"run-{quarter}", self.refs.load, **kw
        )

    def table(self, name: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM {name} ORDER BY ALL").df()

    def close(self) -> None:
        self.alias_cm.__exit__(None, None, None)
        self.con.close()


@pytest.fixture
def pools(built: tuple[Path, Path], tmp_path: Path) -> Pools:
    p = Pools(built, tmp_path)
    yield p
    p.close()


def test_reservoir_seals_a_fixed_share_at_ingest(pools: Pools) -> None:
    total, sealed, with_text = pools.con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE sealed), count(*) FILTER (WHERE sealed AND (input IS NOT NULL OR output IS NOT NULL OR input_messages IS NOT NULL)) FROM {TRACES}"
    ).fetchall()[0]
    share = sealed / total
    assert abs(share - 0.05) < 4 * (0.05 * 0.95 / total) ** 0.5
    assert with_text == 0
    stored = pools.con.execute(
        f"SELECT count(*), count(output) FROM {pools.alias}.reservoir_traces"
    ).fetchall()[0]
    assert stored == (sealed, sealed)  # full text, only in the holdout store
    raw = pools.con.execute(
        f"SELECT count(*) FROM {QUARANTINED_TRACES} WHERE sealed AND raw IS NOT NULL"
    ).fetchall()[0][0]
    assert raw == 0


def test_new_cases_split_70_30_within_each_category(pools: Pools) -> None:
    summary = pools.rotate(Q1)
    assert (summary.entered_active, summary.entered_holdout) == (70, 30)
    assert not summary.shortfall
    per_cat = pools.con.execute(
        f"SELECT category, count(*) FILTER (WHERE pool = 'active'), count(*) FILTER (WHERE pool = 'holdout') FROM {GOLDEN_POOLS} GROUP BY 1"
    ).fetchall()
    for category, active, holdout in per_cat:
        assert abs(holdout - 0.3 * (active + holdout)) < 1, category
    assert {c for c, _, _ in per_cat} == {
        "factual_lookup",
        "how_to",
        "reasoning",
        "refusal_sensitive",
        "edge_case",
    }
    # Holdout cases come from the sealed reservoir, active ones from unsealed sampled traffic.
    sources = pools.con.execute(
        f"SELECT p.pool, bool_and(t.sealed), bool_or(t.sealed) FROM {GOLDEN_POOLS} p JOIN {TRACES} t USING (trace_id) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert sources == [("active", False, False), ("holdout", True, True)]
    # No question in both pools.
    keys = pools.con.execute(
        f"SELECT count(*) FROM {GOLDEN_POOLS} GROUP BY case_key_hash HAVING count(*) > 1"
    ).fetchall()
    assert keys == []


def test_rotating_a_quarter_again_changes_nothing(pools: Pools) -> None:
    pools.rotate(Q1)
    before = {
        t: pools.table(t)
        for t in (GOLDEN_POOLS.name, GOLDEN_CASES.name, POOL_EVENTS.name, POOL_SIZES.name)
    }
    again = pools.rotate(Q1)
    assert again.already_done
    for t, frame in before.items():
        pd.testing.assert_frame_equal(pools.table(t), frame)
    pools.rotate(Q2)
    with pytest.raises(RotationOrderError, match="quarter order"):
        pools.rotate(date(2025, 10, 1))


def test_a_failure_mid_rotation_leaves_the_pools_unchanged(pools: Pools) -> None:
    pools.rotate(Q1)
    before = {t: pools.table(t) for t in (GOLDEN_POOLS.name, GOLDEN_CASES.name, POOL_SIZES.name)}
    moves_before = pools.con.execute(
        f"SELECT count(*) FROM {POOL_EVENTS} WHERE event <> 'holdout_read'"
    ).fetchall()[0][0]

    def boom(conn: duckdb.DuckDBPyConnection) -> None:
        # Everything has been applied inside the transaction by now; then the process "dies".
        assert (
            conn.execute(
                f"SELECT count(*) FROM {POOL_EVENTS} WHERE quarter = ? AND event = 'rotation_complete'",
                [Q2],
            ).fetchall()[0][0]
            == 1
        )
        raise RuntimeError("injected failure before commit")

    with pytest.raises(RuntimeError, match="injected"):
        pools.rotate(Q2, before_commit=boom)
    for t, frame in before.items():
        pd.testing.assert_frame_equal(pools.table(t), frame)
    assert (
        pools.con.execute(
            f"SELECT count(*) FROM {POOL_EVENTS} WHERE event <> 'holdout_read'"
        ).fetchall()[0][0]
        == moves_before
    )
    # The reads that did happen stay logged; the re-run then completes normally.
    assert (
        pools.con.execute(
            f"SELECT count(*) FROM {POOL_EVENTS} WHERE event = 'holdout_read' AND quarter = ?", [Q2]
        ).fetchall()[0][0]
        == 2
    )
    summary = pools.rotate(Q2)
    assert summary.entered_active == 70 and summary.graduated == 9


def test_graduation_and_the_retirement_cap(pools: Pools) -> None:
    capped = RotationSettings(new_cases=100, active_cap=120)
    pools.rotate(Q1, capped)
    second = pools.rotate(Q2, capped)
    assert second.graduated == 9  # floor(0.3 * 30) holdout cases past sealed_until
    assert second.retired == 70 + 70 + 9 - 120
    active = pools.con.execute(
        f"SELECT count(*) FROM {GOLDEN_POOLS} WHERE pool = 'active'"
    ).fetchall()[0][0]
    assert active == 120
    # The oldest go first: every retired case entered in Q1's rotation, none of Q2's.
    retired_entered = pools.con.execute(
        f"SELECT DISTINCT entered_at FROM {GOLDEN_POOLS} WHERE pool = 'retired'"
    ).fetchall()
    assert retired_entered == [(Q2,)]
    graduated = pools.con.execute(
        f"SELECT p.case_id, c.input IS NOT NULL FROM {GOLDEN_POOLS} p LEFT JOIN {GOLDEN_CASES} c USING (case_id) WHERE p.pool_since = ? AND p.case_id IN (SELECT case_id FROM {POOL_EVENTS} WHERE event = 'graduated')",
        [Q3],
    ).fetchall()
    assert len(graduated) == 9 and all(has_text for _, has_text in graduated)
    # A third rotation keeps the cap.
    pools.rotate(Q3, capped)
    assert (
        pools.con.execute(f"SELECT count(*) FROM {GOLDEN_POOLS} WHERE pool = 'active'").fetchall()[
            0
        ][0]
        == 120
    )


def test_every_move_and_every_holdout_read_is_in_the_audit_log(pools: Pools) -> None:
    pools.rotate(Q1)
    pools.rotate(Q2)
    events = pools.table(POOL_EVENTS.name)
    moves = events[events["case_id"].notna()]
    assert set(moves["event"]) == {"entered_active", "entered_holdout", "graduated"}
    assert moves["run_id"].notna().all() and moves["reason"].str.len().gt(0).all()
    # Every case's current pool is the last move's destination.
    last = (
        moves.sort_values(["quarter", "event"])
        .groupby("case_id")["to_pool"]
        .agg(lambda s: s.iloc[-1])
    )
    pools_now = pools.table(GOLDEN_POOLS.name).set_index("case_id")["pool"]
    assert (last.sort_index() == pools_now.sort_index()).all()
    reads = events[events["event"] == "holdout_read"]
    assert len(reads) == 4 and reads["n_cases"].notna().all()
    assert reads["reason"].str.contains("rotation").all()
    assert list(events[events["event"] == "rotation_complete"]["quarter"].dt.date) == [Q1, Q2]


def test_holdout_evaluation_only_in_the_rotation_window_and_once(pools: Pools) -> None:
    with pytest.raises(HoldoutAccessError, match="rotation window"):
        evaluate_holdout(pools.con, pools.alias, Q1, "r0")
    ensure_tables(pools.con, [t for t in ANALYST_TABLES if t.name == HOLDOUT_EVALUATION.name])
    pools.rotate(Q1)
    pools.rotate(Q2)
    with pytest.raises(HoldoutAccessError, match="rotation window"):
        evaluate_holdout(pools.con, pools.alias, Q1, "r1")  # a past rotation
    rows = evaluate_holdout(pools.con, pools.alias, Q2, "r2")
    assert (
        sum(r[3] for r in rows)
        == pools.con.execute(
            f"SELECT count(*) FROM {GOLDEN_POOLS} WHERE pool = 'holdout'"
        ).fetchall()[0][0]
    )
    assert all(0 <= r[4] <= 1 for r in rows)
    with pytest.raises(HoldoutAccessError, match="force"):
        evaluate_holdout(pools.con, pools.alias, Q2, "r3")
    evaluate_holdout(pools.con, pools.alias, Q2, "r4", force=True)
    reads = pools.con.execute(
        f"SELECT run_id, reason FROM {POOL_EVENTS} WHERE event = 'holdout_read' AND reason LIKE 'holdout evaluation%' ORDER BY run_id"
    ).fetchall()
    assert [r[0] for r in reads] == ["r2", "r4"]
    assert "forced" in reads[1][1]


def test_no_holdout_string_in_any_analyst_table_or_the_snapshot(
    pools: Pools, tmp_path: Path
) -> None:
    from evals_pipeline.analytics.snapshot import build_snapshot

    set_up(pools.con)
    for q in (Q1, Q2, Q3):
        pools.rotate(q)
    evaluate_holdout(pools.con, pools.alias, Q3, "eval")
    refresh_fingerprints(pools.con, pools.alias, "check", Q3)
    assert seal_violations(pools.con) == []
    snapshot = tmp_path / "analytics.duckdb"
    build_snapshot(pools.con, snapshot, ANALYST_TABLES)
    pools.con.execute(
        f"""CREATE TEMP TABLE secret AS
        SELECT DISTINCT s FROM (
            SELECT unnest([input, output, reference_good, reference_borderline]) AS s
            FROM {pools.alias}.holdout_cases WHERE case_id IN (SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'holdout'))"""
    )
    secrets = pools.con.execute("SELECT count(*) FROM secret").fetchall()[0][0]
    assert secrets > 4 * 40
    pools.con.execute(f"ATTACH '{snapshot}' AS snap (READ_ONLY)")
    for db in (pools.con.execute("SELECT current_database()").fetchall()[0][0], "snap"):
        for table in ANALYST_TABLES:
            for col in table.columns:
                if col.sql_type not in ("VARCHAR", "JSON"):
                    continue
                hits = pools.con.execute(
                    f"SELECT count(*) FROM {db}.main.{table.name} t JOIN secret ON contains(t.{col.name}::VARCHAR, secret.s)"
                ).fetchall()[0][0]
                assert hits == 0, f"{db}.{table.name}.{col.name} contains holdout text"
    pools.con.execute("DETACH snap")


def test_the_seal_check_finds_a_leak(pools: Pools) -> None:
    pools.rotate(Q1)
    leaked = pools.con.execute(
        f"SELECT h.input FROM {pools.alias}.holdout_cases h JOIN {GOLDEN_POOLS} p USING (case_id) WHERE p.pool = 'holdout' LIMIT 1"
    ).fetchall()[0][0]
    pools.con.execute(
        f"UPDATE {QUARANTINED_TRACES} SET detail = ? WHERE rowid = (SELECT min(rowid) FROM {QUARANTINED_TRACES})",
        [leaked],
    )
    refresh_fingerprints(pools.con, pools.alias, "check", Q1)
    found = seal_violations(pools.con)
    assert found == [{"where": "quarantined_traces.detail equals a holdout string", "rows": 1}]


def test_no_score_row_refers_to_a_holdout_case(pools: Pools) -> None:
    for q in (Q1, Q2):
        pools.rotate(q)
    holdout = {
        r[0]
        for r in pools.con.execute(
            f"SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'holdout'"
        ).fetchall()
    }
    tables_with_cases = pools.con.execute(
        "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'case_id' AND database_name = current_database()"
    ).fetchall()
    for (table,) in tables_with_cases:
        if table in (GOLDEN_POOLS.name, POOL_EVENTS.name):
            continue  # ids only, by design
        ids = {r[0] for r in pools.con.execute(f"SELECT case_id FROM {table}").fetchall()}
        assert not ids & holdout, f"{table} refers to holdout cases"


def test_only_declared_assets_can_reach_the_holdout_store() -> None:
    graph = defs.resolve_asset_graph()
    reach = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets_def = (
            graph.assets_def_for_key(key)
            if hasattr(graph, "assets_def_for_key")
            else node.assets_def
        )
        if "holdout_store" in assets_def.required_resource_keys:
            reach.add(assets_def.node_def.name)
    assert reach == {
        "ingest_traces",
        "golden_pool_rotation",
        HOLDOUT_EVALUATION.name,
        HOLDOUT_PANEL_EVALUATION.name,
        HOLDOUT_REVIEW.name,
    }
    assert {t.name for t in HOLDOUT_STORE_TABLES}.isdisjoint({t.name for t in ANALYST_TABLES})


def test_export_is_the_active_pool_and_is_reproducible(pools: Pools, tmp_path: Path) -> None:
    for q in (Q1, Q2):
        pools.rotate(q)
    out = tmp_path / "golden"
    export_active_pool(pools.con, out)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    export_active_pool(pools.con, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    cases = [json.loads(line) for line in (out / "active.jsonl").read_text().splitlines()]
    active = {
        r[0]
        for r in pools.con.execute(
            f"SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'active'"
        ).fetchall()
    }
    assert {c["case_id"] for c in cases} == active
    assert all(c["references"]["good"] and c["references"]["borderline"] for c in cases)
    changelog = (out / "CHANGELOG.md").read_text()
    assert changelog.index("## 2026-Q2") < changelog.index("## 2026-Q1")
    holdout = [
        r[0]
        for r in pools.con.execute(
            f"SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'holdout'"
        ).fetchall()
    ]
    assert not any(h in changelog for h in holdout)  # holdout cases: counts only
    assert "Graduated holdout → active: 9" in changelog


def test_reviewed_reference_files_are_validated(tmp_path: Path) -> None:
    folder = tmp_path / "reviewed"
    folder.mkdir()
    rows = [
        {
            "trace_id": "t1",
            "reference_good": "Good.",
            "reference_borderline": "Ok.",
            "why": "edge_case",
        },
        {"trace_id": "t2", "reference_good": "", "reference_borderline": "Ok."},
        {
            "trace_id": "t3",
            "reference_good": "Good.",
            "reference_borderline": "Ok.",
            "why": "vibes",
        },
        {
            "trace_id": "t4",
            "reference_good": "Good.",
            "reference_borderline": "Ok.",
            "case_key": "k4",
        },
    ]
    (folder / "batch1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    con = duckdb.connect()
    load = ReviewedFileReferences(folder=str(folder)).load(con)
    assert load.rows == 2
    assert load.rejected == {"missing reference_good": 1, "unknown why": 1}
    assert con.execute("SELECT trace_id, case_key, why FROM _references ORDER BY 1").fetchall() == [
        ("t1", None, "edge_case"),
        ("t4", "k4", None),
    ]


def test_quarters_are_keyed_by_their_first_day() -> None:
    from evals_pipeline.partitions import quarterly_partitions

    window = quarterly_partitions.time_window_for_partition_key("2026-04-01")
    assert (window.start.date(), window.end.date() - timedelta(days=1)) == (Q2, date(2026, 6, 30))
