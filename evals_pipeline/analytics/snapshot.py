"""The analysts' snapshot: `data/analytics.duckdb`, rebuilt beside the warehouse and swapped in.

Analysts open the snapshot read-only; the pipeline never opens it at all. Each run writes a
fresh file next to it (`.analytics.duckdb.<id>.tmp`), copies the analyst tables with their
comments, checkpoints and closes it, then `os.replace`s it over the old one. The rename is
atomic: a reader that already has the old file open keeps reading the old file (its inode
lives on until it closes), a new reader sees the new one, and neither blocks the other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from evals_pipeline.records import Table, run_time_columns, sql_literal
from evals_pipeline.warehouse import table_names


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete what an interrupted build left beside `target` (its `.tmp` file and `.wal`).

    Call it while holding the warehouse (one writer at a time), so no build is in flight.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    stale = sorted(target.parent.glob(f".{target.name}.*.tmp")) + sorted(
        target.parent.glob(f".{target.name}.*.tmp.wal")
    )
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the snapshot file as it is now.

    `duckdb.connect(path)` in a process that already holds a connection to `path` returns
    that connection's database instance, i.e. the snapshot as it was when first opened,
    even after the pipeline swapped in a new file. This attaches the file to a fresh
    in-memory instance instead, so every call sees the current file.
    """
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(f"ATTACH {sql_literal(str(path))} AS analytics (READ_ONLY)")
    conn.execute("USE analytics")
    return conn


def build_snapshot(
    conn: duckdb.DuckDBPyConnection, target: Path, tables: Sequence[Table]
) -> dict[str, int]:
    """Copy `tables` from the warehouse connection `conn` into a new file swapped in at `target`.

    Tables not yet in the warehouse are created empty, so the analysts' contract holds from
    the first run. Returns row counts per table.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    alias = "snapshot_out"
    counts: dict[str, int] = {}
    existing = table_names(conn)
    conn.execute(f"ATTACH '{tmp}' AS {alias}")
    try:
        for table in tables:
            conn.execute(table.ddl(schema=alias))
            if table.name in existing:
                cols = ", ".join(table.column_names)
                conn.execute(
                    f"INSERT INTO {alias}.{table.name} ({cols}) SELECT {cols} FROM main.{table.name}"
                )
            for stmt in table.comment_sql(schema=alias):
                conn.execute(stmt)
            counts[table.name] = conn.execute(
                f"SELECT count(*) FROM {alias}.{table.name}"
            ).fetchall()[0][0]
        conn.execute(f"CHECKPOINT {alias}")
        conn.execute(f"DETACH {alias}")
        os.replace(tmp, target)
    except BaseException:
        try:
            conn.execute(f"DETACH DATABASE IF EXISTS {alias}")
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    return counts


def content_digest(
    conn: duckdb.DuckDBPyConnection,
    exclude: dict[str, set[str]] | None = None,
    decimals: int = 9,
) -> dict[str, dict[str, object]]:
    """Per table of the connection's database: its row count and, per column, an
    order-independent digest of the values (numbers rounded to `decimals`, so a different
    summation order does not count as a change). `exclude` (table -> columns; default: the
    records' run-time columns, when a run happened and how fast its calls were) is left out.
    Two snapshots with equal digests hold the same results."""
    exclude = run_time_columns() if exclude is None else exclude
    out: dict[str, dict[str, object]] = {}
    for table in sorted(table_names(conn)):
        columns = conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        kept = [(c, t) for c, t in columns if c not in exclude.get(table, set())]
        parts = [
            f"sum(hash(round({c}, {decimals}))::HUGEINT)"
            if t in ("DOUBLE", "FLOAT") or t.startswith("DECIMAL")
            else f"sum(hash({c})::HUGEINT)"
            for c, t in kept
        ]
        row = conn.execute(f"SELECT count(*), {', '.join(parts) or '0'} FROM {table}").fetchone()
        assert row is not None
        out[table] = {
            "rows": int(row[0]),
            "columns": {
                c: str(v) if v is not None else None
                for (c, _), v in zip(kept, row[1:], strict=True)
            },
        }
    return out
