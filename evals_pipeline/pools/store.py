"""The holdout store: `data/holdout.duckdb`, reachable only through this resource.

Holdout content (the text of traces diverted into the holdout reservoir at ingest, and the
content of holdout cases) is written here and nowhere else. Only the assets that need it
declare the `holdout_store` resource: ingest (writes the reservoir), the quarterly rotation
(draws and graduates cases) and the holdout evaluation (reads once per rotation). Every read
of holdout content goes through `read_holdout`, which appends a `holdout_read` event to
`pool_events` with run id, quarter and reason before returning anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field

from evals_pipeline.paths import data_dir, holdout_review_dir
from evals_pipeline.records import HOLDOUT_STORE_TABLES, POOL_EVENTS, sql_literal
from evals_pipeline.sampling.stratified import U_SCALE, sample_key_sql

HOLDOUT_ALIAS = "holdout_store"
# A fixed salt: the reservoir bucket of a trace id must never change once traffic is ingested.
RESERVOIR_SALT = 90_210


def reservoir_sql(trace_id_sql: str, share: float) -> str:
    """SQL boolean: does this trace id fall in the holdout reservoir bucket?"""
    return (
        f"({sample_key_sql(trace_id_sql, RESERVOIR_SALT)}::DOUBLE / {U_SCALE} < {float(share)!r})"
    )


class HoldoutStore(ConfigurableResource):
    """The sealed holdout store, attached to a warehouse connection only where declared."""

    database: str = Field(
        default="",
        description="Path of the holdout DuckDB file; empty means <data dir>/holdout.duckdb.",
    )
    reservoir_share: float = Field(
        default=0.05,
        description="Share of traffic (by a fixed hash of trace_id) diverted into the holdout reservoir at ingest. "
        "Changing it after traffic was ingested re-seals different traces: set it once per deployment.",
    )

    def path(self) -> Path:
        return Path(self.database) if self.database else data_dir() / "holdout.duckdb"

    def review_path(self) -> Path:
        """The sealed review area (Layer 3): beside the store file."""
        return self.path().parent / "holdout_review" if self.database else holdout_review_dir()

    @contextmanager
    def attached(self, conn: duckdb.DuckDBPyConnection) -> Iterator[str]:
        """Attach the store to `conn` as `holdout_store` (tables created if missing)."""
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn.execute(f"ATTACH {sql_literal(str(path))} AS {HOLDOUT_ALIAS}")
        try:
            for table in HOLDOUT_STORE_TABLES:
                conn.execute(table.ddl(schema=HOLDOUT_ALIAS))
            yield HOLDOUT_ALIAS
        finally:
            conn.execute(f"DETACH {HOLDOUT_ALIAS}")


def log_pool_event(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    quarter: date,
    event: str,
    reason: str,
    n_cases: int | None = None,
    case_id: str | None = None,
    from_pool: str | None = None,
    to_pool: str | None = None,
) -> None:
    conn.execute(
        f"INSERT INTO {POOL_EVENTS.name} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            datetime.now(UTC).replace(tzinfo=None),
            run_id,
            quarter,
            event,
            case_id,
            from_pool,
            to_pool,
            reason,
            n_cases,
        ],
    )


def read_holdout(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[object],
    *,
    run_id: str,
    quarter: date,
    reason: str,
) -> pa.Table:
    """Run a query over holdout content after logging the read; return its rows.

    `reason` says who reads and why (e.g. "rotation: draw new holdout cases"). The event is
    written, in its own statement, before the rows are returned, so a read is never unlogged.
    """
    rows = conn.sql(sql, params=params).to_arrow_table()
    log_pool_event(conn, run_id, quarter, "holdout_read", reason, n_cases=rows.num_rows)
    return rows
