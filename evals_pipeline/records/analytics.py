"""Bookkeeping of the analysts' snapshot: which day partitions changed since it last copied
them, so a daily run refreshes only those (its cost does not grow with history)."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

PARTITION_VERSIONS = Table(
    "partition_versions",
    "When each day partition of a traffic table was last written (by ingest).",
    (
        Column("table_name", "VARCHAR", "The partitioned table."),
        Column("partition_date", "DATE", "The day partition."),
        Column("written_at", "TIMESTAMP", "When ingest last replaced it (UTC).", run_time=True),
    ),
    primary_key=("table_name", "partition_date"),
)

SNAPSHOT_PARTITIONS = Table(
    "snapshot_partitions",
    "The partition versions the published snapshot holds (what the next refresh compares with).",
    (
        Column("table_name", "VARCHAR", "The partitioned table."),
        Column("partition_date", "DATE", "The day partition."),
        Column("written_at", "TIMESTAMP", "The version copied.", run_time=True),
    ),
)

SNAPSHOT_STATE = Table(
    "snapshot_state",
    "The schema and the seal fingerprints the published snapshot was built and checked with.",
    (
        Column("schema_digest", "VARCHAR", "Digest of the warehouse schema it was built with."),
        Column(
            "seal_digest", "VARCHAR", "Digest of the sealed fingerprints it was checked against."
        ),
        Column("target", "VARCHAR", "The snapshot file."),
    ),
)
