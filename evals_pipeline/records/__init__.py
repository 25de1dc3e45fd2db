"""The records of DESIGN.md as code: field specs that drive validation, and the warehouse DDL.

One place defines what a trace and a feedback event are, and every table: ingest generates
its validation SQL from the specs, the warehouse creates its tables (with comments) from the
tables, assets take their names, descriptions and lineage from them (`specs.py`), and SQL
names a table through its record, so a column means one thing everywhere and a table is
renamed in one line. One module per stage of the data flow; import from here.
"""

from __future__ import annotations

from evals_pipeline.records.analytics import (
    PARTITION_VERSIONS,
    SNAPSHOT_PARTITIONS,
    SNAPSHOT_STATE,
)
from evals_pipeline.records.calibration import (
    ANNOTATOR_AGREEMENT,
    CALIBRATION_TEST_USES,
    CALIBRATION_VERDICTS,
    CATEGORIZER_ACCURACY,
    CORRECTED_PASS_RATES,
    EXTERNAL_VERDICTS,
    GOLD_LABELS,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    PAIRWISE_CALIBRATION,
    QUARANTINED_LABELS,
    QUARANTINED_VERDICTS,
)
from evals_pipeline.records.ingest import (
    DEFAULT_CATEGORIES,
    FEEDBACK_FIELDS,
    FEEDBACK_SIGNALS,
    NEGATIVE_SIGNALS,
    QUARANTINE_REASONS,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    SEALED_TEXT_COLUMNS,
    TRACE_COLUMNS,
    TRACE_FEEDBACK,
    TRACE_FIELDS,
    TRACES,
    UNCATEGORIZED,
    quarantine_table,
)
from evals_pipeline.records.judging import (
    ASSERTION_RESULTS,
    BT_RATINGS,
    CANDIDATE_OUTPUTS,
    JUDGE_CACHE,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    PAIRWISE_VERDICTS,
    REVIEW_QUEUE,
)
from evals_pipeline.records.pools import (
    ACTIVE_EVALUATION,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    HOLDOUT_EVALUATION,
    HOLDOUT_STORE_TABLES,
    POOL_EVENTS,
    POOL_SIZES,
    POOLS,
    RESERVOIR_TRACES,
    SEALED_FINGERPRINTS,
    WHY_VALUES,
)
from evals_pipeline.records.reports import (
    EVIDENCE_CORRELATION,
    HOLDOUT_GAP,
    ONLINE_METRICS,
    ONLINE_OFFLINE_CORRELATION,
    PREFERENCE_RATINGS,
    QUALITY_COST_LATENCY,
    QUARANTINED_ONLINE_METRICS,
    RELEASE_GATES,
    SEGMENT_REPORT,
)
from evals_pipeline.records.review import (
    FAILURE_MODE_DISTRIBUTION,
    REVIEW_ITEMS,
    REVIEW_QUEUES,
    WEEKLY_REVIEW_SAMPLE,
)
from evals_pipeline.records.sampling import (
    TRACE_SAMPLE,
)
from evals_pipeline.records.schema import (
    Column,
    FieldKind,
    FieldSpec,
    Table,
    View,
    sql_literal,
)
from evals_pipeline.records.views import (
    ACTIVE_CASES,
    ACTIVE_POOL,
    SEAL_VIEWS,
    UNSEALED_POOL,
    VISIBLE_TRACES,
)

ANALYST_TABLES: tuple[Table, ...] = (
    TRACES,
    TRACE_FEEDBACK,
    QUARANTINED_TRACES,
    QUARANTINED_FEEDBACK,
    TRACE_SAMPLE,
    GOLDEN_POOLS,
    GOLDEN_CASES,
    POOL_EVENTS,
    POOL_SIZES,
    HOLDOUT_EVALUATION,
    ASSERTION_RESULTS,
    CANDIDATE_OUTPUTS,
    JUDGE_VERDICTS,
    JUDGE_ENSEMBLE,
    REVIEW_QUEUE,
    PAIRWISE_VERDICTS,
    BT_RATINGS,
    HUMAN_LABELS,
    QUARANTINED_LABELS,
    GOLD_LABELS,
    EXTERNAL_VERDICTS,
    QUARANTINED_VERDICTS,
    CALIBRATION_VERDICTS,
    JUDGE_CALIBRATION,
    PAIRWISE_CALIBRATION,
    ANNOTATOR_AGREEMENT,
    CALIBRATION_TEST_USES,
    CORRECTED_PASS_RATES,
    CATEGORIZER_ACCURACY,
    SEGMENT_REPORT,
    RELEASE_GATES,
    QUALITY_COST_LATENCY,
    ONLINE_OFFLINE_CORRELATION,
    ONLINE_METRICS,
    QUARANTINED_ONLINE_METRICS,
    PREFERENCE_RATINGS,
    EVIDENCE_CORRELATION,
    ACTIVE_EVALUATION,
    HOLDOUT_GAP,
    WEEKLY_REVIEW_SAMPLE,
    REVIEW_ITEMS,
    FAILURE_MODE_DISTRIBUTION,
)

# Everything the working warehouse holds; `warehouse.set_up` creates it once per schema version.
WAREHOUSE_TABLES: tuple[Table, ...] = (
    *ANALYST_TABLES,
    SEALED_FINGERPRINTS,
    PARTITION_VERSIONS,
    SNAPSHOT_PARTITIONS,
    SNAPSHOT_STATE,
)
# Large, day-partitioned tables the snapshot refreshes by partition (the rest it copies whole).
PARTITIONED_TABLES: tuple[Table, ...] = (TRACES, TRACE_FEEDBACK)


def run_time_columns(tables: tuple[Table, ...] = WAREHOUSE_TABLES) -> dict[str, set[str]]:
    """Per table, the columns that record when or how fast a run went (not what it found)."""
    return {t.name: {c.name for c in t.columns if c.run_time} for t in tables}


__all__ = [
    "ACTIVE_CASES",
    "ACTIVE_EVALUATION",
    "ACTIVE_POOL",
    "ANALYST_TABLES",
    "ANNOTATOR_AGREEMENT",
    "ASSERTION_RESULTS",
    "BT_RATINGS",
    "CALIBRATION_TEST_USES",
    "CALIBRATION_VERDICTS",
    "CANDIDATE_OUTPUTS",
    "CATEGORIZER_ACCURACY",
    "CORRECTED_PASS_RATES",
    "DEFAULT_CATEGORIES",
    "EVIDENCE_CORRELATION",
    "EXTERNAL_VERDICTS",
    "FAILURE_MODE_DISTRIBUTION",
    "FEEDBACK_FIELDS",
    "FEEDBACK_SIGNALS",
    "GOLDEN_CASES",
    "GOLDEN_POOLS",
    "GOLD_LABELS",
    "HOLDOUT_CASES",
    "HOLDOUT_EVALUATION",
    "HOLDOUT_GAP",
    "HOLDOUT_STORE_TABLES",
    "HUMAN_LABELS",
    "JUDGE_CACHE",
    "JUDGE_CALIBRATION",
    "JUDGE_ENSEMBLE",
    "JUDGE_VERDICTS",
    "NEGATIVE_SIGNALS",
    "ONLINE_METRICS",
    "ONLINE_OFFLINE_CORRELATION",
    "PAIRWISE_CALIBRATION",
    "PAIRWISE_VERDICTS",
    "PARTITIONED_TABLES",
    "PARTITION_VERSIONS",
    "POOLS",
    "POOL_EVENTS",
    "POOL_SIZES",
    "PREFERENCE_RATINGS",
    "QUALITY_COST_LATENCY",
    "QUARANTINED_FEEDBACK",
    "QUARANTINED_LABELS",
    "QUARANTINED_ONLINE_METRICS",
    "QUARANTINED_TRACES",
    "QUARANTINED_VERDICTS",
    "QUARANTINE_REASONS",
    "RELEASE_GATES",
    "RESERVOIR_TRACES",
    "REVIEW_ITEMS",
    "REVIEW_QUEUE",
    "REVIEW_QUEUES",
    "SEALED_FINGERPRINTS",
    "SEALED_TEXT_COLUMNS",
    "SEAL_VIEWS",
    "SEGMENT_REPORT",
    "SNAPSHOT_PARTITIONS",
    "SNAPSHOT_STATE",
    "TRACES",
    "TRACE_COLUMNS",
    "TRACE_FEEDBACK",
    "TRACE_FIELDS",
    "TRACE_SAMPLE",
    "UNCATEGORIZED",
    "UNSEALED_POOL",
    "VISIBLE_TRACES",
    "WAREHOUSE_TABLES",
    "WEEKLY_REVIEW_SAMPLE",
    "WHY_VALUES",
    "Column",
    "FieldKind",
    "FieldSpec",
    "Table",
    "View",
    "quarantine_table",
    "run_time_columns",
    "sql_literal",
]
