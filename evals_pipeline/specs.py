"""Asset specs derived from the records: an asset is named after the table it writes, is
described by that table's comment, carries its column schema, and depends on the tables it
reads. Lineage therefore follows `records/`: renaming a table there renames its asset."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from dagster import AssetKey, AssetSpec, TableColumn, TableSchema, asset

from evals_pipeline.records import Table, View

Readable = Table | View


def deps_of(reads: Iterable[Readable]) -> list[AssetKey]:
    """Asset keys of the tables read (a view stands for the tables it selects from)."""
    keys: list[AssetKey] = []
    for r in reads:
        for table in r.tables if isinstance(r, View) else (r,):
            key = AssetKey(table.name)
            if key not in keys:
                keys.append(key)
    return keys


def column_schema(table: Table) -> TableSchema:
    """The table's columns with their comments, as Dagster shows them."""
    return TableSchema(
        columns=[TableColumn(c.name, c.sql_type, description=c.comment) for c in table.columns]
    )


def _description(table: Table, how: str | None) -> str:
    # What the table is (records/), then how the asset makes it (its docstring).
    return table.comment + (f"\n\n{how}" if how else "")


def _spec_kwargs(
    table: Table, group: str, reads: Iterable[Readable], kinds: Iterable[str]
) -> dict[str, Any]:
    return {
        "group_name": group,
        "kinds": set(kinds),
        "deps": deps_of(reads),
        "metadata": {"dagster/column_schema": column_schema(table)},
    }


def table_spec(
    table: Table,
    *,
    group: str,
    reads: Iterable[Readable] = (),
    kinds: Iterable[str] = ("duckdb",),
    how: str | None = None,
) -> AssetSpec:
    """The spec of an asset that writes `table` (for a multi-asset)."""
    return AssetSpec(
        table.name, description=_description(table, how), **_spec_kwargs(table, group, reads, kinds)
    )


def table_asset(
    table: Table,
    *,
    group: str,
    reads: Iterable[Readable] = (),
    kinds: Iterable[str] = ("duckdb",),
    **asset_kwargs: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """`@asset` for the function that writes `table`: named after the table, described by its
    comment and the function's docstring, depending on the tables in `reads`."""

    def decorate(fn: Callable[..., Any]) -> Any:
        return asset(
            name=table.name,
            description=_description(table, inspect.getdoc(fn)),
            **_spec_kwargs(table, group, reads, kinds),
            **asset_kwargs,
        )(fn)

    return decorate
