"""The Parquet lake of `engine: spark`: the traffic-sized tables (`records.LAKE_TABLES`) as
Parquet, one folder per table and one per day, which the DuckDB warehouse reads as views.

Layout: `<lake>/<table>/partition_date=YYYY-MM-DD/part-*.parquet` (Hive-style, as Spark writes
it). Each table also holds one empty file with its schema in the partition `EMPTY_DAY`, so the
view's glob always matches, before the first run as after it; the partition holds no rows.
Every later stage and every analyst query reads the views and is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from evals_pipeline.records import LAKE_TABLES, Table, sql_literal

# The partition holding each table's empty schema file (never a day of traffic).
EMPTY_DAY = "0001-01-01"
SCHEMA_FILE = "schema.parquet"


def is_remote(lake: str) -> bool:
    return "://" in lake


def table_location(lake: str, table: Table | str) -> str:
    return f"{lake.rstrip('/')}/{table}"


def day_location(lake: str, table: Table | str, day: str) -> str:
    return f"{table_location(lake, table)}/partition_date={day}"


def _duckdb_location(lake: str) -> str:
    # Spark's Hadoop scheme for S3 is s3a://; DuckDB's httpfs reads the same objects as s3://.
    return "s3://" + lake[len("s3a://") :] if lake.startswith("s3a://") else lake


def view_sql(table: Table, lake: str) -> str:
    """The warehouse's view of a lake table: every column cast to its record's type, the day
    from the folder name."""
    glob = sql_literal(f"{table_location(_duckdb_location(lake), table)}/*/*.parquet")
    cols = ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in table.columns)
    return (
        f"CREATE OR REPLACE VIEW {table.name} AS SELECT {cols} FROM read_parquet({glob}, "
        "hive_partitioning = true, hive_types = {'partition_date': DATE}, union_by_name = true)"
    )


def write_schema_files(conn: duckdb.DuckDBPyConnection, lake: str) -> None:
    """The empty schema file of every lake table that has none yet (a local lake; on a remote
    one the Spark side writes them, `spark_lake.prepare_lake`)."""
    if is_remote(lake):
        return
    for table in LAKE_TABLES:
        folder = Path(day_location(lake, table, EMPTY_DAY))
        if (folder / SCHEMA_FILE).exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        cols = ", ".join(
            f"CAST(NULL AS {'VARCHAR' if c.sql_type == 'JSON' else c.sql_type}) AS {c.name}"
            for c in table.columns
            if c.name != "partition_date"
        )
        tmp = folder / f".{SCHEMA_FILE}.tmp"
        conn.execute(
            f"COPY (SELECT {cols} WHERE false) TO {sql_literal(str(tmp))} (FORMAT parquet)"
        )
        tmp.replace(folder / SCHEMA_FILE)


def create_views(conn: duckdb.DuckDBPyConnection, lake: str) -> None:
    """(Re)create the warehouse's views of the lake tables."""
    write_schema_files(conn, lake)
    for table in LAKE_TABLES:
        conn.execute(view_sql(table, lake))
