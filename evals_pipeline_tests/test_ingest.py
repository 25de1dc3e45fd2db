"""Ingest: every quarantine reason, counts in = stored + quarantined, idempotent partitions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from evals_pipeline.ingest.expectations import run_suite
from evals_pipeline.ingest.validation import FEEDBACK_STREAM, TRACE_STREAM, IngestRules, ingest_days
from evals_pipeline.records import (
    DEFAULT_CATEGORIES,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    TRACE_FEEDBACK,
    TRACES,
)
from evals_pipeline.warehouse import connect, set_up

DAY = date(2026, 3, 2)


def trace(trace_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "trace_id": trace_id,
        "ts": "2026-03-02T10:00:00Z",
        "session_id": "s1",
        "user_id": "u1",
        "app_version": "v2",
        "category": "how_to",
        "user_segment": "pro_novice",
        "input": "How do I rotate an API key?",
        "output": "Open Settings › API keys and click 'Rotate key'.",
        "latency_ms": 812.5,
        "cost_usd": 0.0004,
        "input_tokens": 12,
        "output_tokens": 15,
        "metadata": {"channel": "web"},
    }
    row.update(overrides)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def enc(row: dict[str, object]) -> bytes:
    return json.dumps(row).encode()


@pytest.fixture
def conn(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = connect(tmp_path / "wh.duckdb")
    set_up(c)
    yield c
    c.close()


def quarantine(
    conn: duckdb.DuckDBPyConnection, table: str = QUARANTINED_TRACES.name
) -> dict[int, str]:
    return dict(conn.execute(f"SELECT source_row, reason FROM {table}").fetchall())


def test_each_trace_quarantine_reason(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    bad_utf8 = enc(trace("t-utf8")).replace(b"Open Settings", b"Open \xff\xfe Settings")
    lines = [
        enc(trace("t-ok")),  # 1
        b'{"trace_id": "t-broken", "ts": ',  # 2
        enc(trace("t-missing", user_segment=_DROP)),  # 3
        enc(trace("t-type", latency_ms="fast")),  # 4
        enc(trace("t-big", output="x" * 70_000)),  # 5
        enc(trace("t-cat", category="astrology")),  # 6
        enc(trace("t-late", ts="2026-03-03T00:00:01Z")),  # 7
        enc(trace("t-ok")),  # 8: the same trace delivered twice
        bad_utf8,  # 9
        b"[1, 2, 3]",  # 10: JSON, but not an object
        enc(trace("")),  # 11: empty id
        enc(trace("t-badmsgs", input=[{"role": "user"}])),  # 12: message without content
        enc(trace("t-tokens", input_tokens=3.5)),  # 13
    ]
    path = write_jsonl(tmp_path / "in" / "web.jsonl", lines)
    counts = ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules())
    assert quarantine(conn) == {
        2: "malformed_json",
        3: "missing_field",
        4: "wrong_type",
        5: "oversized_field",
        6: "unknown_category",
        7: "ts_outside_partition",
        8: "duplicate_trace_id",
        9: "invalid_utf8",
        10: "malformed_json",
        11: "missing_field",
        12: "wrong_type",
        13: "wrong_type",
    }
    assert counts.rows_in == 13 and counts.stored == 1 and counts.quarantined == 12
    details = dict(conn.execute(f"SELECT source_row, detail FROM {QUARANTINED_TRACES}").fetchall())
    assert details[3] == "user_segment"
    assert details[4] == "latency_ms"
    assert details[6] == "astrology"
    assert conn.execute(f"SELECT trace_id FROM {TRACES}").fetchall() == [("t-ok",)]
    # A duplicate is decided after its batch was written; its raw text is read again.
    raw = dict(conn.execute(f"SELECT source_row, raw FROM {QUARANTINED_TRACES}").fetchall())
    assert raw[8] == lines[7].decode()
    assert conn.execute(f"SELECT count(*) FROM {TRACES} WHERE source_row = 8").fetchall() == [(0,)]


def test_parquet_rows_take_the_same_path(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        [trace("p-ok"), trace("p-null-user", user_id=None), trace("p-cat", category="astrology")]
    )
    frame["metadata"] = frame["metadata"].map(json.dumps)
    path = tmp_path / "api.parquet"
    frame.to_parquet(path)
    counts = ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules())
    assert quarantine(conn) == {2: "missing_field", 3: "unknown_category"}
    assert counts.balanced and counts.stored == 1


def test_chat_messages_keep_the_list_and_the_last_user_turn(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "?"},
        {"role": "user", "content": "second"},
    ]
    path = write_jsonl(tmp_path / "web.jsonl", [enc(trace("t-chat", input=messages))])
    ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules())
    text, stored = conn.execute(f"SELECT input, input_messages FROM {TRACES}").fetchall()[0]
    assert text == "second"
    assert json.loads(stored) == messages


def test_feedback_reasons(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ok = {"trace_id": "t1", "ts": "2026-03-02T11:00:00Z", "signal": "thumbs_up", "value": 1}
    lines = [
        enc(ok),
        enc({**ok, "signal": "applause"}),
        enc(ok),
        enc({**ok, "value": "one"}),
        enc({k: v for k, v in ok.items() if k != "signal"}),
        enc({**ok, "ts": "not a time"}),
    ]
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    counts = ingest_days(conn, FEEDBACK_STREAM, {DAY: [path]}, IngestRules())
    assert quarantine(conn, QUARANTINED_FEEDBACK.name) == {
        2: "unknown_signal",
        3: "duplicate_event",
        4: "wrong_type",
        5: "missing_field",
        6: "wrong_type",
    }
    assert counts.stored == 1 and counts.balanced


def test_reingesting_a_day_replaces_it(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "web.jsonl", [enc(trace("a")), enc(trace("b")), b"{oops"])
    for _ in range(3):
        counts = ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules())
    assert counts.stored == 2
    assert conn.execute(f"SELECT count(*) FROM {TRACES}").fetchall()[0][0] == 2
    assert conn.execute(f"SELECT count(*) FROM {QUARANTINED_TRACES}").fetchall()[0][0] == 1


def test_a_trace_id_stored_on_another_day_is_a_duplicate(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    first = write_jsonl(
        tmp_path / "d1" / "web.jsonl", [enc(trace("same", ts="2026-03-01T09:00:00Z"))]
    )
    second = write_jsonl(tmp_path / "d2" / "web.jsonl", [enc(trace("same"))])
    ingest_days(conn, TRACE_STREAM, {date(2026, 3, 1): [first]}, IngestRules())
    ingest_days(conn, TRACE_STREAM, {DAY: [second]}, IngestRules())
    assert conn.execute(f"SELECT reason, detail FROM {QUARANTINED_TRACES}").fetchall() == [
        ("duplicate_trace_id", "already stored in another partition")
    ]


def test_the_duplicate_window_bounds_the_cross_day_check(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A trace id stored ten days earlier is outside a 7-day window (the check does not grow
    with history) and inside an unbounded one."""
    early = date(2026, 2, 20)
    first = write_jsonl(
        tmp_path / "d0" / "web.jsonl", [enc(trace("same", ts="2026-02-20T09:00:00Z"))]
    )
    second = write_jsonl(tmp_path / "d1" / "web.jsonl", [enc(trace("same"))])
    ingest_days(conn, TRACE_STREAM, {early: [first]}, IngestRules())
    counts = ingest_days(conn, TRACE_STREAM, {DAY: [second]}, IngestRules(duplicate_window_days=7))
    assert counts.stored == 1 and counts.quarantined == 0
    counts = ingest_days(
        conn, TRACE_STREAM, {DAY: [second]}, IngestRules(duplicate_window_days=None)
    )
    assert counts.stored == 0 and counts.by_reason == {"duplicate_trace_id": 1}
    counts = ingest_days(conn, TRACE_STREAM, {DAY: [second]}, IngestRules(duplicate_window_days=10))
    assert counts.by_reason == {"duplicate_trace_id": 1}


def test_a_duplicate_parquet_row_keeps_its_raw_text(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    frame = pd.DataFrame([trace("p-1"), trace("p-2"), trace("p-1", output="again")])
    frame["metadata"] = frame["metadata"].map(json.dumps)
    path = tmp_path / "api.parquet"
    frame.to_parquet(path)
    counts = ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules(), batch_rows=2)
    assert counts.stored == 2 and counts.by_reason == {"duplicate_trace_id": 1}
    row, raw = conn.execute(f"SELECT source_row, raw FROM {QUARANTINED_TRACES}").fetchall()[0]
    assert row == 3 and json.loads(raw)["output"] == "again"
    assert conn.execute(f"SELECT output FROM {TRACES} WHERE trace_id = 'p-1'").fetchall() == [
        (trace("p-1")["output"],)
    ]


def test_batches_are_not_held_until_the_commit() -> None:
    """Inside the ingest's one transaction each Arrow batch is freed once written: DuckDB's
    register() would keep every batch until the commit (the whole day in memory)."""
    import pyarrow as pa

    from evals_pipeline.warehouse import over_arrow, transaction

    con = duckdb.connect()
    con.execute("CREATE TABLE t (x VARCHAR)")
    one_batch = 0
    with transaction(con):
        for _ in range(10):
            batch = pa.table({"x": pa.array(["y" * 1000] * 20_000)})
            one_batch = batch.nbytes
            over_arrow(con, "_batch", batch, "INSERT INTO t SELECT x FROM _batch")
            del batch
        assert pa.total_allocated_bytes() < 2 * one_batch
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(200_000,)]


def test_configured_taxonomy_decides_unknown_category(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "web.jsonl", [enc(trace("a", category="billing"))])
    ingest_days(conn, TRACE_STREAM, {DAY: [path]}, IngestRules())
    assert quarantine(conn) == {1: "unknown_category"}
    ingest_days(
        conn, TRACE_STREAM, {DAY: [path]}, IngestRules(categories=(*DEFAULT_CATEGORIES, "billing"))
    )
    assert quarantine(conn) == {}


def test_every_planted_bad_row_is_quarantined_with_its_reason(
    conn: duckdb.DuckDBPyConnection, small_sim: Path
) -> None:
    days = sorted(date.fromisoformat(p.name[3:]) for p in (small_sim / "traces").iterdir())
    planted = pd.read_parquet(small_sim / "truth" / "planted_bad_rows.parquet")
    for stream, folder, table in (
        (TRACE_STREAM, "traces", "quarantined_traces"),
        (FEEDBACK_STREAM, "feedback", "quarantined_feedback"),
    ):
        files = {d: sorted((small_sim / folder / f"dt={d}").glob("*")) for d in days}
        counts = ingest_days(conn, stream, files, IngestRules(), root=small_sim)
        assert counts.balanced
        got = conn.execute(f"SELECT source_file, source_row, trace_id, reason FROM {table}").df()
        mine = planted[planted["source_file"].str.startswith(folder)]
        jsonl = mine[mine["line"].notna()]
        assert set(
            zip(jsonl["source_file"], jsonl["line"].astype(int), jsonl["reason"], strict=True)
        ) == set(
            zip(
                *(
                    got.loc[got["source_file"].str.endswith(".jsonl"), c]
                    for c in ("source_file", "source_row", "reason")
                ),
                strict=True,
            )
        )
        parquet = mine[mine["line"].isna()]
        assert set(zip(parquet["trace_id"], parquet["reason"], strict=True)) == set(
            zip(
                *(
                    got.loc[got["source_file"].str.endswith(".parquet"), c]
                    for c in ("trace_id", "reason")
                ),
                strict=True,
            )
        )
    assert len(planted) > 20  # the small simulation plants enough rows to mean something


def _day_contents(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_batches_of_any_size_store_and_quarantine_the_same_rows(
    small_sim: Path, tmp_path: Path
) -> None:
    """Streaming ingest: a day read in batches of 7 rows (duplicates then fall in different
    batches, files share batches) stores and quarantines exactly what one batch does."""
    from evals_pipeline.warehouse import connect, set_up

    days = sorted(date.fromisoformat(p.name[3:]) for p in (small_sim / "traces").iterdir())[:2]
    results = []
    for batch_rows in (7, 1_000_000):
        con = connect(tmp_path / f"w{batch_rows}.duckdb")
        set_up(con)
        for stream, folder in ((TRACE_STREAM, "traces"), (FEEDBACK_STREAM, "feedback")):
            files = {d: sorted((small_sim / folder / f"dt={d}").glob("*")) for d in days}
            counts = ingest_days(
                con, stream, files, IngestRules(), small_sim, batch_rows=batch_rows
            )
            assert counts.balanced
        results.append(
            {
                t: _day_contents(con, t)
                for t in (
                    TRACES.name,
                    QUARANTINED_TRACES.name,
                    TRACE_FEEDBACK.name,
                    QUARANTINED_FEEDBACK.name,
                )
            }
        )
    small, whole = results
    assert whole[QUARANTINED_TRACES.name] and whole[QUARANTINED_FEEDBACK.name]
    for table in whole:
        assert small[table] == whole[table], table
    dups = [r for r in whole[QUARANTINED_FEEDBACK.name] if r[3] == "duplicate_event"]
    assert dups  # the simulation delivers duplicates, so the batches had some to find


def test_expectation_suite_flags_what_rows_cannot_show() -> None:
    frame = pd.DataFrame(
        {
            "trace_id": ["a", "b", "b"],
            "ts": pd.to_datetime(["2026-03-02"] * 3),
            "category": ["how_to", "how_to", "reasoning"],
            "app_version": ["v1"] * 3,
            "user_segment": ["free_novice"] * 3,
            "output_bytes": [10, 12, 9],
            "sealed": [False, False, False],
            "latency_ms": [100.0, 200.0, 300.0],
            "cost_usd": [0.1, 0.1, 0.1],
            "input_tokens": [1, 2, 3],
            "output_tokens": [1, 2, 3],
        }
    )
    outcome = run_suite(frame, "traces", DEFAULT_CATEGORIES)
    assert not outcome.success
    assert [f["expectation"] for f in outcome.failed] == ["expect_column_values_to_be_unique"]
    assert run_suite(frame.iloc[:2], "traces", DEFAULT_CATEGORIES).success
