"""Asset metadata shared by every stage: row counts, column schema, markdown previews."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd
from dagster import MaterializeResult, MetadataValue, TableColumn, TableSchema

from evals_pipeline.records import Table
from evals_pipeline.warehouse import replace_table


def markdown_table(frame: pd.DataFrame, max_chars: int = 60) -> str:
    """A small frame as a markdown table, long cells cut so the UI stays readable."""
    if frame.empty:
        return "_(no rows)_"
    shown = frame.copy()
    for col in shown.columns:
        if shown[col].dtype == object or pd.api.types.is_string_dtype(shown[col]):
            shown[col] = shown[col].map(
                lambda v: (
                    v if not isinstance(v, str) or len(v) <= max_chars else v[: max_chars - 1] + "…"
                )
            )
    return shown.to_markdown(index=False)


def table_metadata(
    conn: duckdb.DuckDBPyConnection,
    table: Table | str,
    where: str = "true",
    params: Sequence[Any] = (),
    preview_columns: Sequence[str] | None = None,
    preview_rows: int = 5,
    preview_where: str | None = None,
) -> dict[str, Any]:
    """Row count of the rows this materialization wrote (`where`: its partitions, or the
    whole table), column schema with comments, and a preview (of `preview_where` rows, e.g.
    the headline ones, when given)."""
    table = str(table)
    count = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", list(params)).fetchall()[0][
        0
    ]
    comments = dict(
        conn.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'",
            [table],
        ).fetchall()
    )
    described = conn.execute(f"DESCRIBE {table}").fetchall()
    schema = TableSchema(
        columns=[
            TableColumn(name=r[0], type=r[1], description=comments.get(r[0])) for r in described
        ]
    )
    cols = ", ".join(preview_columns) if preview_columns else "*"
    preview = conn.execute(
        f"SELECT {cols} FROM {table} WHERE {where} AND ({preview_where or 'true'}) LIMIT {preview_rows}",
        list(params),
    ).df()
    return {
        "dagster/row_count": MetadataValue.int(int(count)),
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(markdown_table(preview)),
    }


def rounded(frame: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """The frame's numeric columns rounded for display (dates and text as they are)."""
    return frame.round({c: decimals for c in frame.select_dtypes("number").columns})


def replaced_with(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    frame: pd.DataFrame,
    label: str,
    decimals: int = 3,
    shown: pd.DataFrame | None = None,
    extra: dict[str, MetadataValue] | None = None,
) -> MaterializeResult:
    """Replace all of `table` with `frame` (one transaction) and describe it: row count,
    schema, and the whole (small) frame rounded, under `label` (or only `shown`, a part of
    it, when the whole would not read well in the UI), plus any `extra` metadata."""
    replace_table(conn, table, frame)
    return MaterializeResult(
        metadata={
            **table_metadata(conn, table),
            label: MetadataValue.md(
                markdown_table(rounded(frame if shown is None else shown, decimals))
            ),
            **(extra or {}),
        }
    )


# The metadata key under which a file-reading asset records the files it read (name ->
# [mtime_ns, size]); the drop-folder sensors compare the folder against it.
FILES_STATE = "files_state"


def evidence_results(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    quarantine: Table,
    counts: dict[str, int],
    files: dict[str, list[int]],
    summary: dict[str, pd.DataFrame],
) -> list[MaterializeResult]:
    """The two materializations of an evidence folder load: its table (with the files read,
    the counts and `summary` tables) and its quarantine table."""
    meta = {k: MetadataValue.int(v) for k, v in counts.items()}
    return [
        MaterializeResult(
            asset_key=table.name,
            metadata={
                **table_metadata(conn, table),
                **meta,
                **{k: MetadataValue.md(markdown_table(v)) for k, v in summary.items()},
                FILES_STATE: MetadataValue.json(files),
            },
        ),
        MaterializeResult(
            asset_key=quarantine.name, metadata={**table_metadata(conn, quarantine), **meta}
        ),
    ]
