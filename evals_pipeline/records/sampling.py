"""The daily stratified sample."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

TRACE_SAMPLE = Table(
    "trace_sample",
    "Daily stratified sample of traces with per-category floors; weight = 1/inclusion_prob re-weights to traffic.",
    (
        Column("partition_date", "DATE", "The daily partition sampled."),
        Column("trace_id", "VARCHAR", "Sampled trace."),
        Column("category", "VARCHAR", "Task category (the stratum)."),
        Column(
            "stratum",
            "VARCHAR",
            "'traffic' (stratified sample of all traffic) or 'flashlight' (oversampled low online signal).",
        ),
        Column(
            "inclusion_prob",
            "DOUBLE",
            "Probability this row was drawn, within its stratum and category. Sum of 1/p over 'traffic' rows = category traffic.",
        ),
        Column("weight", "DOUBLE", "1 / inclusion_prob."),
        Column("category_traffic", "BIGINT", "Traces of this category in the partition."),
        Column(
            "sample_key",
            "DOUBLE",
            "The row's deterministic hash key in [0, 1) (smaller = drawn first).",
        ),
        Column("seed", "BIGINT", "Sampling seed."),
        Column(
            "duckdb_version",
            "VARCHAR",
            "DuckDB version whose hash() produced sample_key (null when Spark drew the sample).",
        ),
        Column(
            "engine",
            "VARCHAR",
            "What drew the sample and hashed sample_key: 'duckdb <version>' or 'spark <version>'. "
            "A day re-sampled on the same engine and version reproduces its sample.",
        ),
    ),
)
