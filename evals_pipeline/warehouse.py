"""The working warehouse: a DuckDB file the pipeline owns, reached through `DuckDBResource`.

Every connection runs in UTC so timestamps without an offset mean the same thing everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from evals_pipeline import lake as lake_views
from evals_pipeline.records import (
    LAKE_TABLES,
    SEAL_VIEWS,
    WAREHOUSE_TABLES,
    Table,
    View,
    history_of,
)

# Which schema a warehouse was set up with: a digest of every table's and view's DDL and comments.
SCHEMA_MARK = "warehouse_schema"


class Warehouse(DuckDBResource):
    """DuckDBResource that always closes its connection and runs in UTC. With `lake` set
    (engine spark), the traffic-sized tables are views of the Parquet lake there."""

    lake: str | None = Field(
        default=None,
        description="The Parquet lake of engine spark ('' = engine duckdb: every table in the "
        "file); unset = whatever the file was set up with.",
    )

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as conn:
            try:
                conn.execute("SET TimeZone = 'UTC'")
                set_up(conn, self.lake)
                yield conn
            finally:
                conn.close()


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A plain connection in UTC, for code that runs outside Dagster (demo, tests, bench)."""
    conn = duckdb.connect(str(path), read_only=read_only)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def schema_digest(lake: str = "") -> str:
    """Digest of the warehouse's schema as this release defines it in `records/` (and of
    where its lake tables are read from)."""
    parts = [t.ddl() + "\n".join(t.comment_sql()) for t in WAREHOUSE_TABLES]
    parts += [v.ddl() for v in SEAL_VIEWS]
    if lake:
        parts += [lake_views.view_sql(t, lake) for t in LAKE_TABLES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class EngineMismatch(RuntimeError):
    """The warehouse file keeps its traffic tables one way and the project file asks for the
    other: switching would hide the stored traffic, so it is refused."""


def set_up(conn: duckdb.DuckDBPyConnection, lake: str | None = None) -> bool:
    """Create every warehouse table (`records.WAREHOUSE_TABLES`) and the seal's views once:
    again only when this release's schema differs from the one the file was set up with
    (new tables, columns or comments). Assets then read and write without defensive DDL.
    With a `lake` (engine spark) the lake tables are views of it; None keeps what the file
    was set up with. Returns whether anything was (re)created."""
    recorded = None
    if SCHEMA_MARK in table_names(conn):
        rows = conn.execute(f"SELECT * FROM {SCHEMA_MARK}").fetchall()
        recorded = (rows[0][1] if len(rows[0]) > 1 else "") if rows else None
        if lake is None:
            lake = recorded or ""
        elif recorded is not None and bool(recorded) != bool(lake):
            was, now = ("spark", "duckdb") if recorded else ("duckdb", "spark")
            raise EngineMismatch(
                f"the warehouse {_file_of(conn)} keeps its traffic tables for engine {was}"
                f"{f' (lake {recorded})' if recorded else ''}, but the project file says engine "
                f"{now}: the stored traffic would drop out of sight. Use another data directory "
                "(EVALS_DATA_DIR) for the other engine, or set engine back (docs/spark.md)."
            )
        if rows and rows[0][0] == schema_digest(lake):
            return False
    lake = lake or ""
    with transaction(conn):
        if lake:
            lake_views.create_views(conn, lake)
            for stmt in (v for t in LAKE_TABLES for v in _view_comments(t)):
                conn.execute(stmt)
        ensure_tables(conn, (*WAREHOUSE_TABLES, *SEAL_VIEWS))
        conn.execute(
            f"CREATE OR REPLACE TABLE {SCHEMA_MARK} AS SELECT ? AS digest, ? AS lake",
            [schema_digest(lake), lake],
        )
    return True


def recorded_lake(conn: duckdb.DuckDBPyConnection) -> str:
    """The lake the warehouse reads its traffic tables from ('' when they are its own)."""
    rows = conn.execute(f"SELECT * FROM {SCHEMA_MARK}").fetchall()
    return str(rows[0][1] or "") if rows and len(rows[0]) > 1 else ""


def _file_of(conn: duckdb.DuckDBPyConnection) -> str:
    rows = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] else "(in memory)"


def _view_comments(table: Table) -> list[str]:
    return [
        f"COMMENT ON VIEW {table.name} IS "
        + "'"
        + (table.comment + " Read from the Parquet lake (engine spark).").replace("'", "''")
        + "'"
    ]


def table_names(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables in the connection's current database, with the views of the lake
    tables (engine spark), which stand in for tables."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    }


def _view_names(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal"
        ).fetchall()
    }


def ensure_tables(conn: duckdb.DuckDBPyConnection, tables: Iterable[Table | View]) -> None:
    """Create the tables if missing, add columns a newer release defined (so a warehouse
    built by an older release keeps working), and (re)apply their comments. Views (the
    seal's, `records.SEAL_VIEWS`) are created after the tables they read."""
    views = _view_names(conn)
    for table in tables:
        if isinstance(table, View):
            ensure_tables(conn, table.tables)
            conn.execute(table.ddl())
            continue
        if table.name in views:
            continue  # a lake table, read as a view (lake.py)
        conn.execute(table.ddl())
        have = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = current_schema() AND table_name = ?",
                [table.name],
            ).fetchall()
        }
        for col in table.columns:
            if col.name not in have:
                conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.sql_type}")
        for stmt in table.comment_sql():
            conn.execute(stmt)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction around the block: committed when it ends, rolled back if it raises
    (readers never see half of a replacement)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def registered(conn: duckdb.DuckDBPyConnection, **frames: object) -> Iterator[None]:
    """pandas / Arrow objects visible to SQL under the given names for the block only."""
    for name, frame in frames.items():
        conn.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            # A block that failed inside a transaction: its error is the one to see, and the
            # next registration under the name replaces this one.
            with suppress(duckdb.TransactionException):
                conn.unregister(name)


def over_arrow(
    conn: duckdb.DuckDBPyConnection, name: str, table: object, sql: str
) -> duckdb.DuckDBPyRelation:
    """Run `sql` with an Arrow table visible as `name` for this statement only. Unlike
    `registered` it makes no catalog entry, so inside a transaction nothing holds on to the
    table until the commit (a batch loop stays flat in memory)."""
    return conn.from_arrow(table).query(name, sql)


def replace_table(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    frame: object,
    casts: dict[str, str] | None = None,
) -> None:
    """Replace all rows of `table` with `frame` (pandas or Arrow) in one transaction."""
    casts = casts or {}
    cols = ", ".join(f"{c}::{casts[c]}" if c in casts else c for c in table.column_names)
    with registered(conn, _replacement_rows=frame), transaction(conn):
        conn.execute(f"DELETE FROM {table.name}")
        # By name: a warehouse from an older release has new columns at the end.
        names = ", ".join(table.column_names)
        conn.execute(f"INSERT INTO {table.name} ({names}) SELECT {cols} FROM _replacement_rows")


def append_history(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    run_id: str,
    partition: str,
    where: str = "true",
    params: Iterable[object] = (),
) -> None:
    """Append `table`'s current rows (those matching `where`) to its history table, keyed by
    run and partition. A retried step of the same run replaces what it appended."""
    history = history_of(table)
    cols = ", ".join(table.column_names)
    with transaction(conn):
        conn.execute(
            f"DELETE FROM {history.name} WHERE run_id = ? AND partition = ?", [run_id, partition]
        )
        conn.execute(
            f"""INSERT INTO {history.name} (run_id, partition, recorded_at, {cols})
                SELECT ?, ?, now()::TIMESTAMP, {cols} FROM {table.name} WHERE {where}""",
            [run_id, partition, *params],
        )
