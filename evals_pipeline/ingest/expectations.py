"""Great Expectations 1.x suites for the ingested tables, run inside Dagster asset checks.

Row-level validation already quarantined what breaks the record contract; these suites are
the second line: they look at the stored partition as a whole (uniqueness across files,
value sets, plausible ranges). GX is imported lazily: its import takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evals_pipeline.records import FEEDBACK_SIGNALS, TRACE_FIELDS, TRACES


@dataclass(frozen=True)
class ExpectationOutcome:
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]


def _trace_expectations(gxe: Any, categories: Sequence[str]) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="trace_id"),
        gxe.ExpectColumnValuesToBeUnique(column="trace_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="ts"),
        gxe.ExpectColumnValuesToNotBeNull(column="app_version"),
        gxe.ExpectColumnValuesToNotBeNull(column="user_segment"),
        # Unsealed traces carry their answer; traces sealed in the holdout reservoir carry none.
        gxe.ExpectColumnValuesToNotBeNull(
            column="output_bytes", row_condition="sealed==False", condition_parser="pandas"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="output_bytes", min_value=1),
        gxe.ExpectColumnValuesToBeNull(
            column="output_bytes", row_condition="sealed==True", condition_parser="pandas"
        ),
        gxe.ExpectColumnValuesToBeInSet(column="category", value_set=list(categories)),
        # The same bounds validation quarantines by (records/): a blocking suite must not
        # fail a run over a row that validation accepts (a long agent run, a costly call).
        *(
            gxe.ExpectColumnValuesToBeBetween(column=spec.name, min_value=spec.minimum)
            for spec in TRACE_FIELDS
            if spec.minimum is not None
        ),
    ]


def _feedback_expectations(gxe: Any) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="trace_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="ts"),
        gxe.ExpectColumnValuesToBeInSet(column="signal", value_set=list(FEEDBACK_SIGNALS)),
        gxe.ExpectColumnValuesToBeBetween(column="value", min_value=0, max_value=1_000_000),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["trace_id", "ts", "signal", "value"]),
    ]


def run_suite(
    frame: pd.DataFrame, suite_name: str, categories: Sequence[str] = ()
) -> ExpectationOutcome:
    """Validate `frame` against the named suite ('traces' or 'trace_feedback')."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no telemetry: no network at run time
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas(f"{suite_name}_source")
    batch_def = source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe(
        "partition"
    )
    expectations = (
        _trace_expectations(gxe, categories)
        if suite_name == TRACES.name
        else _feedback_expectations(gxe)
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failed = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column")
            or r.expectation_config.kwargs.get("column_list"),
            "unexpected_count": r.result.get("unexpected_count"),
            "examples": r.result.get("partial_unexpected_list", [])[:5],
        }
        for r in result.results
        if not r.success
    ]
    return ExpectationOutcome(bool(result.success), len(result.results), failed)
