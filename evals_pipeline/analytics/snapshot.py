"""The analysts' snapshot: `data/analytics.duckdb`, rebuilt beside the warehouse and swapped in.

Analysts open the snapshot read-only; the pipeline never opens it at all. Each run writes a
fresh file next to it (`.analytics.duckdb.<id>.tmp`), copies the analyst tables with their
comments, checkpoints and closes it, then `os.replace`s it over the old one. The rename is
atomic: a reader that already has the old file open keeps reading the old file (its inode
lives on until it closes), a new reader sees the new one, and neither blocks the other.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.records import (
    PARTITION_VERSIONS,
    PARTITIONED_TABLES,
    SEALED_FINGERPRINTS,
    SNAPSHOT_PARTITIONS,
    SNAPSHOT_STATE,
    Table,
    run_time_columns,
    sql_literal,
)
from evals_pipeline.warehouse import registered, table_names, transaction


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


@dataclass(frozen=True)
class RefreshPlan:
    """What the next snapshot must copy: per partitioned table the days written since the
    published snapshot copied them (`changed`) and the days it holds that are gone (`removed`);
    `seal_digest` is the fingerprints' digest the published snapshot was checked against."""

    changed: dict[str, list[date]]
    removed: dict[str, list[date]]
    seal_digest: str


def seal_digest(conn: duckdb.DuckDBPyConnection) -> str:
    """Digest of the sealed fingerprints (changes when a rotation seals other strings)."""
    if SEALED_FINGERPRINTS.name not in table_names(conn):
        return "none"
    n, h = conn.execute(
        f"SELECT count(*), coalesce(sum(hash(fingerprint))::VARCHAR, '0') FROM {SEALED_FINGERPRINTS}"
    ).fetchall()[0]
    return f"{n}:{h}"


def refresh_plan(conn: duckdb.DuckDBPyConnection, target: Path) -> RefreshPlan | None:
    """The partitions to refresh in the published snapshot, or None when it must be built
    whole (no snapshot yet, another file, or a schema this release changed)."""
    from evals_pipeline.warehouse import schema_digest

    state = conn.execute(
        f"SELECT schema_digest, seal_digest, target FROM {SNAPSHOT_STATE}"
    ).fetchall()
    if not Path(target).exists() or not state:
        return None
    schema, seal, published = state[0]
    if schema != schema_digest() or published != str(target):
        return None
    changed: dict[str, list[date]] = {}
    removed: dict[str, list[date]] = {}
    for table in PARTITIONED_TABLES:
        changed[table.name] = [
            r[0]
            for r in conn.execute(
                f"""SELECT v.partition_date FROM {PARTITION_VERSIONS} v
                LEFT JOIN {SNAPSHOT_PARTITIONS} s USING (table_name, partition_date)
                WHERE v.table_name = ? AND s.written_at IS DISTINCT FROM v.written_at
                ORDER BY 1""",
                [table.name],
            ).fetchall()
        ]
        removed[table.name] = [
            r[0]
            for r in conn.execute(
                f"""SELECT s.partition_date FROM {SNAPSHOT_PARTITIONS} s
                ANTI JOIN {PARTITION_VERSIONS} v USING (table_name, partition_date)
                WHERE s.table_name = ? ORDER BY 1""",
                [table.name],
            ).fetchall()
        ]
    return RefreshPlan(changed, removed, seal)


def _clone(source: Path, target: Path) -> None:
    """Copy a file; in-kernel (and a reflink on filesystems that share blocks, XFS, btrfs)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        try:
            copied = 0
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
            if copied == size:
                return
        except OSError:
            pass
    shutil.copyfile(source, target)


def refresh_snapshot(
    conn: duckdb.DuckDBPyConnection, target: Path, tables: Sequence[Table], plan: RefreshPlan
) -> dict[str, int]:
    """Like `build_snapshot`, but starting from a copy of the published snapshot: the
    partitioned tables get only their changed days, the other (small) tables are copied whole,
    and the copy is swapped in atomically. The cost follows what changed, not the history."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    alias = "snapshot_out"
    counts: dict[str, int] = {}
    existing = table_names(conn)
    _clone(target, tmp)
    conn.execute(f"ATTACH '{tmp}' AS {alias}")
    try:
        for table in tables:
            cols = ", ".join(table.column_names)
            copy = f"INSERT INTO {alias}.{table.name} ({cols}) SELECT {cols} FROM main.{table.name}"
            if table.name not in plan.changed:
                conn.execute(f"DELETE FROM {alias}.{table.name}")
                if table.name in existing:
                    conn.execute(copy)
            else:
                days = plan.changed[table.name] + plan.removed[table.name]
                if days:
                    with registered(
                        conn, _refresh_days=pa.table({"d": pa.array(days, pa.date32())})
                    ):
                        conn.execute(
                            f"DELETE FROM {alias}.{table.name} WHERE partition_date IN (SELECT d FROM _refresh_days)"
                        )
                        conn.execute(
                            f"{copy} WHERE partition_date IN (SELECT d FROM _refresh_days) ORDER BY ts"
                        )
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


def record_published(conn: duckdb.DuckDBPyConnection, target: Path, seal: str) -> None:
    """After a snapshot was swapped in: what it holds, for the next refresh to compare with."""
    from evals_pipeline.warehouse import schema_digest

    with transaction(conn):
        conn.execute(f"DELETE FROM {SNAPSHOT_PARTITIONS}")
        conn.execute(f"INSERT INTO {SNAPSHOT_PARTITIONS} SELECT * FROM {PARTITION_VERSIONS}")
        conn.execute(f"DELETE FROM {SNAPSHOT_STATE}")
        conn.execute(
            f"INSERT INTO {SNAPSHOT_STATE} VALUES (?, ?, ?)", [schema_digest(), seal, str(target)]
        )


@dataclass
class Publication:
    """What `publish` did: row counts of the published snapshot (empty when not published),
    the days refreshed per table (None: built whole), the seal check's findings and the
    temporaries of an interrupted build it removed."""

    counts: dict[str, int]
    refreshed: dict[str, int] | None
    violations: list[dict[str, object]]
    sealed_strings: int
    removed: list[Path]


def publish(conn: duckdb.DuckDBPyConnection, target: Path, tables: Sequence[Table]) -> Publication:
    """Check the seal and, when it holds, refresh (or build) the snapshot at `target`.

    Days already published were checked against the same fingerprints: only the days about
    to be published need the check then; any change of the fingerprints checks everything.
    Call it holding the warehouse: what an interrupted build left is removed first."""
    from evals_pipeline.pools.sealing import seal_violations, sealed_string_count

    removed = remove_stale_temporaries(target)
    plan = refresh_plan(conn, target)
    seal = seal_digest(conn)
    only_days = plan.changed if plan is not None and plan.seal_digest == seal else None
    violations = seal_violations(conn, only_days=only_days)
    sealed = sealed_string_count(conn)
    if violations:
        return Publication({}, None, violations, sealed, removed)
    if plan is None:
        counts = build_snapshot(conn, target, tables)
    else:
        counts = refresh_snapshot(conn, target, tables, plan)
    record_published(conn, target, seal)
    refreshed = {t: len(d) for t, d in plan.changed.items()} if plan is not None else None
    return Publication(counts, refreshed, [], sealed, removed)
