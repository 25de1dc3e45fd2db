"""Spark's side of engine spark: the session the project file configures (through
dagster-pyspark's resource) and the Parquet lake it writes (`lake.py` is the DuckDB side).

A day is replaced the way the warehouse replaces a partition: the new rows are written to a
staging folder first, then each day's folder is swapped in (delete, rename). A crash between
the two leaves that day missing, never half-written; re-running the day mends it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from dagster_pyspark import LazyPySparkResource

from evals_pipeline.lake import EMPTY_DAY, day_location, is_remote, table_location
from evals_pipeline.paths import data_dir
from evals_pipeline.records import LAKE_TABLES, Table

# Spark SQL type of each record type (JSON is text in the lake; the warehouse view casts it).
SPARK_TYPES = {
    "VARCHAR": "string",
    "JSON": "string",
    "TIMESTAMP": "timestamp_ntz",
    "DATE": "date",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
}


class EngineUnavailable(RuntimeError):
    """engine spark was chosen, but this machine cannot start Spark (no Java runtime)."""


def lake_location(cfg: Any) -> str:
    """Where the project's lake is ('' for engine duckdb): spark.lake resolved against the
    project file's folder, default <data dir>/lake."""
    if cfg.engine != "spark":
        return ""
    lake = cfg.spark.lake
    if lake and is_remote(lake):
        return lake.rstrip("/")
    return str(cfg.path(lake).resolve()) if lake else str(data_dir() / "lake")


def session_config(cfg: Any) -> dict[str, str]:
    """The Spark settings of the project file over this pipeline's defaults: UTC, no UI or
    _SUCCESS markers, the variant parser accepting duplicate keys (as DuckDB's JSON does),
    and, on a local master, few shuffle partitions (the default 200 is for clusters)."""
    master = cfg.spark.master
    local = master.startswith("local")
    conf = {
        "spark.master": master,
        "spark.app.name": "evals_pipeline",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.variant.allowDuplicateKeys": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # Cached rows are text-heavy (a trace's input and output): smaller column batches keep
        # a task's buffers small.
        "spark.sql.inMemoryColumnarStorage.batchSize": "2000",
    }
    if local:
        conf |= {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 2)),
            "spark.driver.memory": "2g",
        }
    return conf | dict(cfg.spark.conf)


def spark_resource(cfg: Any) -> LazyPySparkResource:
    """dagster-pyspark's lazy resource with the project's settings: a session starts only
    when an asset of engine spark asks for it."""
    return LazyPySparkResource(spark_config=session_config(cfg))


def session(resource: LazyPySparkResource) -> Any:
    """The resource's SparkSession, or a clear error where no Java runtime is installed."""
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise EngineUnavailable(
            "engine: spark needs a Java runtime (17 or newer) and none is installed: "
            "apt-get install default-jre-headless, or set JAVA_HOME (docs/spark.md)"
        )
    # PySpark starts its Python workers with $PYSPARK_PYTHON: this interpreter (and its
    # packages) unless the deployment chose another.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = resource.spark_session
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_engine(cfg: Any, conn: Any, resource: LazyPySparkResource) -> tuple[Any, str] | None:
    """(the session, the lake) when the project runs its traffic stages on Spark, None on
    DuckDB. Refuses a warehouse that reads another lake (or none): what Spark wrote would not
    be what the warehouse shows."""
    from evals_pipeline.warehouse import EngineMismatch, recorded_lake

    lake = lake_location(cfg)
    if recorded_lake(conn) != lake:
        raise EngineMismatch(
            f"the project file says engine {cfg.engine}{f' with lake {lake}' if lake else ''}, "
            f"but the warehouse reads {recorded_lake(conn) or 'its own tables (engine duckdb)'}: "
            "give the warehouse resource the project's lake (definitions.resources does), or "
            "use another data directory (docs/spark.md)"
        )
    if not lake:
        return None
    spark = session(resource)
    prepare_lake(spark, lake)
    return spark, lake


def unit_key_sql(column: str, seed: int) -> str:
    """Spark SQL: a key in [0, 1) from xxhash64 of the column chained with the seed (its top
    53 bits, so the double is exact and never rounds up to 1)."""
    return (
        f"(CAST(shiftrightunsigned(xxhash64({column}, CAST({int(seed)} AS BIGINT)), 11) AS DOUBLE)"
        " / 9007199254740992.0)"
    )


def engine_version(spark: Any) -> str:
    return f"spark {spark.version}"


def spark_schema(table: Table, columns: Iterable[str] | None = None) -> str:
    """DDL of (some of) a table's columns as Spark reads or writes them."""
    names = list(columns) if columns is not None else table.column_names
    types = {c.name: SPARK_TYPES[c.sql_type] for c in table.columns}
    return ", ".join(f"{n} {types[n]}" for n in names)


def read_lake(spark: Any, lake: str, table: Table, columns: Iterable[str]) -> Any:
    """A lake table's columns (with partition_date) as a DataFrame, read with the record's
    types so files written by either side (the schema file, Spark's parts) agree."""
    cols = [c for c in columns if c != "partition_date"]
    schema = spark_schema(table, [*cols, "partition_date"])
    return spark.read.schema(schema).parquet(table_location(lake, table))


def prepare_lake(spark: Any, lake: str) -> None:
    """On a remote lake, the empty schema file of each table (a local one gets them from the
    warehouse, `lake.write_schema_files`)."""
    if not is_remote(lake):
        return
    fs = _FileSystem(spark, lake)
    for table in LAKE_TABLES:
        where = day_location(lake, table, EMPTY_DAY)
        if not fs.exists(where):
            schema = spark_schema(table, [c for c in table.column_names if c != "partition_date"])
            spark.createDataFrame([], schema).coalesce(1).write.parquet(where)


def typed(frame: Any, table: Table) -> Any:
    """The frame's columns in the table's order, cast to the lake's types."""
    return frame.selectExpr(
        *(f"CAST({c.name} AS {SPARK_TYPES[c.sql_type]}) AS {c.name}" for c in table.columns)
    )


def replace_days(spark: Any, frame: Any, lake: str, table: Table, days: Iterable[date]) -> None:
    """Make `frame` (the table's columns) the whole of the given days of `table` in the lake:
    written to a staging folder, then swapped in day by day. A day without rows ends empty."""
    days = sorted(set(days))
    staging = f"{lake}/_staging/{table}/{uuid.uuid4().hex}"
    typed(frame, table).write.mode("overwrite").partitionBy("partition_date").parquet(staging)
    fs = _FileSystem(spark, lake)
    fs.mkdirs(table_location(lake, table))
    try:
        for day in days:
            target = day_location(lake, table, str(day))
            fs.delete(target)
            written = f"{staging}/partition_date={day}"
            if fs.exists(written):
                fs.rename(written, target)
    finally:
        fs.delete(staging)


class _FileSystem:
    """Hadoop's FileSystem of the lake (a local folder, s3a://, hdfs://), through the JVM."""

    def __init__(self, spark: Any, lake: str) -> None:
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._path(lake if is_remote(lake) else f"file://{lake}").getFileSystem(conf)

    def _p(self, where: str) -> Any:
        return self._path(where if is_remote(where) else f"file://{where}")

    def exists(self, where: str) -> bool:
        return bool(self._fs.exists(self._p(where)))

    def delete(self, where: str) -> None:
        self._fs.delete(self._p(where), True)

    def mkdirs(self, where: str) -> None:
        self._fs.mkdirs(self._p(where))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._p(src), self._p(dst)):
            raise OSError(f"could not move {src} to {dst}")
