"""The online-signal aggregates over all traffic, run where the traffic lives: in DuckDB, or
with `engine: spark` on Spark over the lake (the same SQL: `correlation.py`'s queries read
only `traces` and `trace_feedback`, which Spark sees as views of the lake). What comes back is
small: a row per cell, per month, or per labelled trace."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd

from evals_pipeline.records import CALIBRATION_VERDICTS, TRACE_FEEDBACK, TRACES
from evals_pipeline.reports.correlation import MONTHLY_SQL, ONLINE_MONTHLY_SQL, TRACE_SIGNALS_CTE
from evals_pipeline.spark_lake import read_lake
from evals_pipeline.warehouse import registered

Spark = tuple[Any, str] | None


def _on_spark(spark: tuple[Any, str], sql: str, params: dict[str, Any]) -> pd.DataFrame:
    session, lake = spark
    read_lake(
        session, lake, TRACES, ["trace_id", "app_version", "user_segment"]
    ).createOrReplaceTempView(TRACES.name)
    read_lake(session, lake, TRACE_FEEDBACK, ["trace_id", "signal"]).createOrReplaceTempView(
        TRACE_FEEDBACK.name
    )
    for name in params:
        sql = sql.replace(f"${name}", f":{name}")
    frame = session.sql(sql, args=params).toPandas()
    # Spark's averages of decimal literals come back as Decimal: numbers here are floats.
    for col in frame.columns:
        values = frame[col].dropna()
        if frame[col].dtype == object and len(values) and isinstance(values.iloc[0], Decimal):
            frame[col] = frame[col].astype(float)
    return frame


def online_query(
    conn: duckdb.DuckDBPyConnection, spark: Spark, sql: str, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Rows of a query over `traces` and `trace_feedback` alone, where they live."""
    params = params or {}
    if spark is None:
        return conn.execute(sql, params).df()
    return _on_spark(spark, sql, params)


def per_trace_query(
    conn: duckdb.DuckDBPyConnection, spark: Spark, sql: str, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """A per-labelled-trace query (`PER_TRACE_SQL`): on Spark, the online signals of the
    labelled traces only are computed there and joined in DuckDB."""
    params = params or {}
    if spark is None:
        return conn.execute(sql, params).df()
    ids = conn.execute(f"SELECT DISTINCT subject_id FROM {CALIBRATION_VERDICTS}").df()
    session = spark[0]
    session.createDataFrame(
        ids if not ids.empty else pd.DataFrame({"subject_id": pd.Series([], dtype=str)}),
        "subject_id string",
    ).createOrReplaceTempView("_subjects")
    signals = _on_spark(
        spark,
        f"WITH {TRACE_SIGNALS_CTE} SELECT * FROM f WHERE trace_id IN (SELECT subject_id FROM _subjects)",
        {},
    )
    with registered(conn, _trace_signals=signals):
        return conn.execute(
            sql.replace(TRACE_SIGNALS_CTE, "\nf AS (SELECT * FROM _trace_signals)"), params
        ).df()


def monthly_query(
    conn: duckdb.DuckDBPyConnection, spark: Spark, judges: list[str], end: Any
) -> pd.DataFrame:
    """Per month, the trusted judges' offline pass rate (DuckDB) beside the traffic's
    thumbs-up rate (where the traffic lives)."""
    online = online_query(conn, spark, ONLINE_MONTHLY_SQL, {"end": end})
    with registered(conn, _online_monthly=online):
        return conn.execute(MONTHLY_SQL, {"judges": judges, "end": end}).df()
