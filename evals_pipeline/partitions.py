"""Partitions shared by the stages. Days are UTC; the first day is configurable."""

from __future__ import annotations

import os
from datetime import date

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

# First day of traffic. The embedded simulator starts on 2026-01-01; set EVALS_START_DATE
# for a real deployment whose traces start elsewhere.
START_DATE = os.environ.get("EVALS_START_DATE", "2026-01-01")

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")

# Quarters, keyed by their first day (2026-01-01 = 2026-Q1); a quarter's partition becomes
# available when it has ended, so its rotation runs on the first day of the next quarter.
quarterly_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,4,7,10 *", start=START_DATE, fmt="%Y-%m-%d", timezone="UTC"
)

# Weeks run Friday to Thursday (day_offset 5 = Friday), so the batch for the seeds' Friday
# review is ready on Friday morning with the whole past week in it.
weekly_partitions = WeeklyPartitionsDefinition(
    start_date=START_DATE, day_offset=5, timezone="UTC", fmt="%Y-%m-%d"
)


def partition_days(context: AssetExecutionContext | AssetCheckExecutionContext) -> list[date]:
    """The UTC days a run covers: one for a scheduled run, many for a single-run backfill."""
    return [date.fromisoformat(k) for k in context.partition_keys]


def quarter_window(
    context: AssetExecutionContext | AssetCheckExecutionContext,
) -> tuple[date, date]:
    """[first day, first day of the next quarter) of the run's single quarter."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def schedule_status(enabled: bool) -> DefaultScheduleStatus:
    """A schedule runs by default only when the project file's `schedules:` turns it on."""
    return DefaultScheduleStatus.RUNNING if enabled else DefaultScheduleStatus.STOPPED


def sensor_status(enabled: bool) -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if enabled else DefaultSensorStatus.STOPPED


def run_partition(context: AssetExecutionContext) -> str:
    """The run's partition key ('' for an unpartitioned run): an unpartitioned asset in a
    quarterly run still knows which quarter it was run for."""
    if context.has_partition_key:
        return context.partition_key
    return context.run.tags.get("dagster/partition", "")
