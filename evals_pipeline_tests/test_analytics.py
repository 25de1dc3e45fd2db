"""The analysts' snapshot is refreshed by what changed: the partitions ingest wrote since the
published snapshot copied them, everything else small copied whole; the result equals a
snapshot built whole, and the seal is checked everywhere whenever the fingerprints change."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import Failure

from evals_pipeline.analytics.snapshot import build_snapshot, content_digest, refresh_plan
from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.pools.sealing import seal_violations
from evals_pipeline.records import (
    ANALYST_TABLES,
    SEALED_FINGERPRINTS,
    TRACE_FEEDBACK,
    TRACES,
)
from evals_pipeline.warehouse import connect
from evals_pipeline_tests.helpers import check_results, run_daily


def _refresh_metadata(result) -> dict:  # type: ignore[no-untyped-def]
    mats = [
        m
        for m in result.asset_materializations_for_node("analytics_snapshot")
        if "refresh" in m.metadata
    ]
    return mats[-1].metadata["refresh"].value


def _digest_of(path: Path) -> dict:
    con = connect(path, read_only=True)
    try:
        return content_digest(con)
    finally:
        con.close()


def test_the_snapshot_refreshes_only_changed_days_and_equals_a_whole_build(
    small_sim: Path, data_dir: Path
) -> None:
    first = run_daily(small_sim, "2026-03-01", "2026-03-04")
    assert first.success and _refresh_metadata(first) == {"whole": True}
    second = run_daily(small_sim, "2026-03-05")
    assert second.success and all(check_results(second).values())
    # the day just ingested, in each partitioned table; nothing else was copied by day
    assert _refresh_metadata(second) == {"changed_days": {TRACES.name: 1, TRACE_FEEDBACK.name: 1}}
    # Re-ingesting an old day replaces it in the snapshot too.
    third = run_daily(small_sim, "2026-03-02")
    assert _refresh_metadata(third) == {"changed_days": {TRACES.name: 1, TRACE_FEEDBACK.name: 1}}
    whole = data_dir / "whole.duckdb"
    con = connect(warehouse_path())
    try:
        build_snapshot(con, whole, ANALYST_TABLES)
        assert refresh_plan(con, analytics_path()) is not None
    finally:
        con.close()
    refreshed = _digest_of(analytics_path())
    assert refreshed[TRACES.name]["rows"] > 0
    assert refreshed == _digest_of(whole)


def test_a_change_of_fingerprints_checks_every_published_day_again(
    small_sim: Path, data_dir: Path
) -> None:
    assert run_daily(small_sim, "2026-03-01", "2026-03-03").success
    con = connect(warehouse_path())
    try:
        # A string of an old day, published already, becomes a holdout string (as when a
        # rotation seals a case whose question that trace asked).
        leaked = con.execute(
            f"SELECT output FROM {TRACES} WHERE partition_date = DATE '2026-03-01' "
            "AND output IS NOT NULL LIMIT 1"
        ).fetchall()[0][0]
        con.execute(
            f"INSERT INTO {SEALED_FINGERPRINTS} (fingerprint, length) VALUES (sha256(?), strlen(?))",
            [leaked, leaked],
        )
        # limited to the days about to be published, the check would not look there ...
        assert not seal_violations(con, only_days={TRACES.name: [], TRACE_FEEDBACK.name: []})
        assert seal_violations(con)
    finally:
        con.close()
    # ... but the fingerprints changed since the published snapshot: everything is checked.
    before = _digest_of(analytics_path())
    with pytest.raises(Failure, match="snapshot was NOT published"):
        run_daily(small_sim, "2026-03-04")
    assert _digest_of(analytics_path()) == before  # nothing was published
