"""Partitions shared by the stages. Days are UTC; the first day is configurable."""

from __future__ import annotations

import os
from datetime import date

from dagster import AssetCheckExecutionContext, AssetExecutionContext, DailyPartitionsDefinition

# First day of traffic. The embedded simulator starts on 2026-01-01; set EVALS_START_DATE
# for a real deployment whose traces start elsewhere.
START_DATE = os.environ.get("EVALS_START_DATE", "2026-01-01")

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")


def partition_days(context: AssetExecutionContext | AssetCheckExecutionContext) -> list[date]:
    """The UTC days a run covers: one for a scheduled run, many for a single-run backfill."""
    return [date.fromisoformat(k) for k in context.partition_keys]
