"""The stratified sample on engine spark: `stratified.py`'s method on the lake's traces.

Per (day, category) stratum the sample is the n_c rows with the smallest key u in [0, 1) from a
64-bit hash of the trace id and the seed (xxhash64 here, DuckDB's hash() there: the same
method, other rows). The allocation is the same function (`allocate`), the same threshold
pre-filter keeps about n_c + 5 sqrt(n_c) + 10 rows per stratum before the ranking, a stratum
that falls short is redone without it, and inclusion probabilities are exactly n_c / N_c.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from evals_pipeline.records import NEGATIVE_SIGNALS, TRACE_FEEDBACK, TRACE_SAMPLE, TRACES
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.sampling.stratified import SampleSettings, threshold_for
from evals_pipeline.spark_lake import engine_version, read_lake, replace_days, unit_key_sql

PLAN_DDL = "partition_date date, category string, n_alloc bigint, traffic bigint, threshold double"


def draw_sample_spark(
    spark: Any, frame: Any, size: int, floor: float, seed: int
) -> tuple[dict[tuple[date, str], tuple[int, int]], Any]:
    """`draw_sample` over a DataFrame (partition_date, trace_id, category): the plan
    {(day, category): (n_alloc, traffic)} and the sampled rows with sample_key,
    inclusion_prob and category_traffic."""
    from pyspark.sql import functions as F
    from pyspark.storagelevel import StorageLevel

    plan: dict[tuple[date, str], tuple[int, int]] = {}
    per_day: dict[date, dict[str, int]] = {}
    for day, category, n in frame.groupBy("partition_date", "category").count().collect():
        per_day.setdefault(day, {})[category] = int(n)
    for day, counts in per_day.items():
        for category, n_alloc in allocate(counts, size, floor).items():
            plan[(day, category)] = (n_alloc, counts[category])
    rows = [(d, c, n, t, threshold_for(n, t)) for (d, c), (n, t) in sorted(plan.items())]
    alloc = F.broadcast(spark.createDataFrame(rows, PLAN_DDL))
    keyed = frame.selectExpr(
        "partition_date", "trace_id", "category", f"{unit_key_sql('trace_id', seed)} AS u"
    )
    top = max((r[4] for r in rows), default=0.0)
    # The survivors are few (about n_c + 5 sqrt(n_c) + 10 a stratum): kept, so that counting
    # them and ranking them is one scan of the traffic, not two.
    survivors = (
        keyed.where(F.col("u") < top)
        .join(alloc, ["partition_date", "category"])
        .where(F.col("u") < F.col("threshold"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    kept = survivors
    # Strata that fell short of their allocation (a > 5-sigma event): redo them in full.
    found = dict(
        ((d, c), n) for d, c, n in survivors.groupBy("partition_date", "category").count().collect()
    )
    short = [(d, c) for d, c, n, _, t in rows if found.get((d, c), 0) < n and t < 1.0]
    if short:
        redo = F.broadcast(spark.createDataFrame(short, "partition_date date, category string"))
        survivors = survivors.join(redo, ["partition_date", "category"], "left_anti").unionByName(
            keyed.join(redo, ["partition_date", "category"]).join(
                alloc, ["partition_date", "category"]
            )
        )
    survivors.createOrReplaceTempView("_survivors")
    sample = spark.sql(
        """SELECT partition_date, trace_id, category, u AS sample_key,
                  CAST(n_alloc AS DOUBLE) / traffic AS inclusion_prob, traffic AS category_traffic
           FROM (SELECT *, row_number() OVER (PARTITION BY partition_date, category
                                              ORDER BY u, trace_id) AS rank
                 FROM _survivors)
           WHERE rank <= n_alloc"""
    ).localCheckpoint(eager=True)
    kept.unpersist()
    return plan, sample


def write_trace_sample_spark(
    spark: Any, lake: str, days: list[date], settings: SampleSettings
) -> dict[tuple[date, str], tuple[int, int]]:
    """`write_trace_sample` on Spark: replace the days of `trace_sample` in the lake with a
    'traffic' and a 'flashlight' stratum (traces with negative feedback among the feedback
    ingested so far, with their own salt and inclusion probabilities)."""
    from pyspark.sql import functions as F

    traces = read_lake(spark, lake, TRACES, ["trace_id", "category"]).where(
        F.col("partition_date").isin(days)
    )
    negative = read_lake(spark, lake, TRACE_FEEDBACK, ["trace_id", "signal"]).where(
        F.col("signal").isin(list(NEGATIVE_SIGNALS))
    )
    flagged = traces.join(negative.select("trace_id").distinct(), "trace_id", "left_semi")
    plan, traffic = draw_sample_spark(spark, traces, settings.size, settings.floor, settings.seed)
    _, flashlight = draw_sample_spark(
        spark, flagged, settings.flashlight_size, settings.floor, settings.seed + 1
    )
    version = engine_version(spark)

    def labelled(frame: Any, stratum: str, seed: int) -> Any:
        return frame.selectExpr(
            "partition_date",
            "trace_id",
            "category",
            f"'{stratum}' AS stratum",
            "inclusion_prob",
            "1.0 / inclusion_prob AS weight",
            "category_traffic",
            "sample_key",
            f"CAST({int(seed)} AS BIGINT) AS seed",
            "CAST(NULL AS STRING) AS duckdb_version",
            f"'{version}' AS engine",
        )

    rows = labelled(traffic, "traffic", settings.seed).unionByName(
        labelled(flashlight, "flashlight", settings.seed + 1)
    )
    replace_days(spark, rows, lake, TRACE_SAMPLE, days)
    return plan
