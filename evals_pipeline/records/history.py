"""History: every run's rows of the tables a team watches over time, appended (the tables
themselves stay the current view). One history table per watched table, the same columns
after the run's key."""

from __future__ import annotations

from evals_pipeline.records.calibration import CORRECTED_PASS_RATES, JUDGE_CALIBRATION
from evals_pipeline.records.reports import (
    ONLINE_OFFLINE_CORRELATION,
    RELEASE_GATES,
    SEGMENT_REPORT,
)
from evals_pipeline.records.schema import Column, Table

HISTORY_KEY: tuple[Column, ...] = (
    Column("run_id", "VARCHAR", "Dagster run that wrote these rows.", run_time=True),
    Column(
        "partition",
        "VARCHAR",
        "The run's partition (a quarter's first day), or '' for an unpartitioned run.",
    ),
    Column("recorded_at", "TIMESTAMP", "When the rows were written (UTC).", run_time=True),
)


def history_of(table: Table) -> Table:
    return Table(
        f"{table.name}_history",
        f"Every run's rows of {table.name} (appended; {table.name} is the current view): "
        + table.comment,
        HISTORY_KEY + table.columns,
    )


WATCHED: tuple[Table, ...] = (
    SEGMENT_REPORT,
    JUDGE_CALIBRATION,
    CORRECTED_PASS_RATES,
    RELEASE_GATES,
    ONLINE_OFFLINE_CORRELATION,
)
# pool_sizes needs none: it keeps one row set per rotation already (a re-run changes nothing).
HISTORY_TABLES: tuple[Table, ...] = tuple(history_of(t) for t in WATCHED)
(
    SEGMENT_REPORT_HISTORY,
    JUDGE_CALIBRATION_HISTORY,
    CORRECTED_PASS_RATES_HISTORY,
    RELEASE_GATES_HISTORY,
    ONLINE_OFFLINE_CORRELATION_HISTORY,
) = HISTORY_TABLES
