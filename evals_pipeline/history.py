"""History assets: after a watched table is rebuilt, its rows are appended to
`<table>_history` keyed by run, partition and time (records/history.py). One small asset
per watched table, in its table's group, so it runs in the same jobs right after it."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from evals_pipeline.metadata import table_metadata
from evals_pipeline.partitions import run_partition
from evals_pipeline.records import Table, history_of
from evals_pipeline.specs import table_asset
from evals_pipeline.warehouse import Warehouse, append_history


def history_asset(
    table: Table, group: str, partition_column: str | None = None
) -> AssetsDefinition:
    """The asset appending `table`'s rows to its history table. With `partition_column`, only
    the rows of the run's partition are appended (a table that keeps every quarter)."""
    history = history_of(table)

    @table_asset(history, group=group, reads=[table])
    def _history(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        partition = run_partition(context)
        where = f"{partition_column} = ?" if partition_column and partition else "true"
        with warehouse.get_connection() as conn:
            append_history(
                conn,
                table,
                context.run_id,
                partition,
                where,
                [partition] if partition_column and partition else [],
            )
            runs = conn.execute(f"SELECT count(DISTINCT run_id) FROM {history.name}").fetchall()[0][
                0
            ]
            return MaterializeResult(
                metadata={
                    **table_metadata(conn, history, "run_id = ?", [context.run_id]),
                    "runs_recorded": MetadataValue.int(runs),
                    "partition": MetadataValue.text(partition or "(none)"),
                }
            )

    _history.__doc__ = f"Appends this run's rows of {table.name}, keyed by run, partition and time."
    return _history
