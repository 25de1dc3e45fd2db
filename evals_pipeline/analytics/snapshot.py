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

from evals_pipeline.records import Table


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
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
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
