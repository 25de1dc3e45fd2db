"""Online metric files -> `online_metrics` and `quarantined_online_metrics`.

Files in `data/online_metrics/` (JSONL or CSV, BOM-safe), one value per system (or app
version) per date, optionally per segment (docs/evidence.md). Two shapes:

- long: `date, system, metric, value` (+ optional `segment`, `n`, `kind`); other columns
  are kept as attributes;
- wide: `date, system` (+ `segment`, `n`, `kind`) and one column per metric; a column
  header may carry its kind, `offline:judge_score`, else the row's `kind` (default online).

`kind` is online (what users did) or offline (a score another tool gave each system, to be
correlated with the online metrics). A row with any unreadable value is quarantined whole
with its reason; an empty cell is no value, not an error.
"""

from __future__ import annotations

from evals_pipeline.calibration.evidence import (
    PARSED_CTE,
    READ_REASONS_SQL,
    EvidenceFormat,
    reason_columns,
)
from evals_pipeline.records import ONLINE_METRICS, QUARANTINED_ONLINE_METRICS, sql_literal

METRIC_KINDS = ("online", "offline")


def online_metrics_format(segment_by: str) -> EvidenceFormat:
    """The online metrics format; the segment is the `segment_by` attribute (evidence.segment_by)."""
    known = ("date", "system", "app_version", segment_by, "metric", "value", "n", "kind")
    names = ", ".join(sql_literal(k) for k in known)
    seg = sql_literal(segment_by)
    sql = f"""
WITH {PARSED_CTE}, f AS (
    SELECT *, coalesce(nullif(trim(j->>'system'), ''), nullif(trim(j->>'app_version'), '')) AS system,
           j->>'date' AS date_raw, coalesce(nullif(trim(j->>{seg}), ''), 'all') AS segment,
           j->>'n' AS n_raw, lower(trim(coalesce(j->>'kind', 'online'))) AS row_kind,
           nullif(trim(j->>'metric'), '') AS metric_raw, j->>'value' AS value_raw,
           list_filter(map_entries(TRY_CAST(j AS MAP(VARCHAR, JSON))), lambda e: e.key NOT IN ({names})) AS others
    FROM p
), m AS (
    SELECT *, TRY_CAST(TRY_CAST(date_raw AS TIMESTAMP) AS DATE) AS date,
           TRY_CAST(n_raw AS DOUBLE) AS n_num,
           CASE WHEN metric_raw IS NOT NULL OR value_raw IS NOT NULL
                -- long: one metric per row, every other column an attribute
                THEN [{{'metric': metric_raw, 'kind': row_kind, 'text': value_raw}}]
                -- wide: every other column is a metric, `kind:` prefix optional
                ELSE list_transform(list_filter(others, lambda e: json_type(e.value) <> 'NULL'), lambda e: {{
                    'metric': CASE WHEN regexp_matches(e.key, '^(online|offline):') THEN split_part(e.key, ':', 2) ELSE e.key END,
                    'kind': CASE WHEN regexp_matches(e.key, '^(online|offline):') THEN split_part(e.key, ':', 1) ELSE row_kind END,
                    'text': json_extract_string(e.value, '$')}})
           END AS cells,
           CASE WHEN metric_raw IS NOT NULL OR value_raw IS NOT NULL
                THEN to_json(map_from_entries(others)) ELSE '{{}}'::JSON END AS attributes
    FROM f
), r AS (
    SELECT *,
        list_filter(cells, lambda c: TRY_CAST(c.text AS DOUBLE) IS NULL OR NOT isfinite(TRY_CAST(c.text AS DOUBLE))) AS bad_values,
        CASE {READ_REASONS_SQL}
             WHEN system IS NULL THEN 'missing_field|system (or app_version)'
             WHEN coalesce(trim(date_raw), '') = '' THEN 'missing_field|date'
             WHEN date IS NULL THEN 'wrong_type|date ' || date_raw || ' (expected YYYY-MM-DD)'
             WHEN row_kind NOT IN ('online', 'offline') THEN 'wrong_type|kind ' || row_kind || ' (expected online or offline)'
             WHEN metric_raw IS NULL AND value_raw IS NOT NULL THEN 'missing_field|metric'
             WHEN metric_raw IS NOT NULL AND value_raw IS NULL THEN 'missing_field|value'
             WHEN len(cells) = 0 THEN 'missing_field|metric and value, or one column per metric'
             WHEN n_raw IS NOT NULL AND (n_num IS NULL OR n_num < 0 OR n_num <> floor(n_num))
                  THEN 'wrong_type|n ' || n_raw || ' (expected a count)'
        END AS why0
    FROM m
), w AS (
    SELECT *, coalesce(why0, CASE WHEN len(bad_values) > 0 THEN 'wrong_type|' || bad_values[1].metric
           || ' ' || coalesce(bad_values[1].text, 'null') || ' (expected a number)' END) AS why
    FROM r
)
SELECT *, {reason_columns()}, system AS key_id FROM w
"""
    return EvidenceFormat(
        "online_metrics",
        ONLINE_METRICS,
        QUARANTINED_ONLINE_METRICS,
        sql,
        """date, system, segment, cell.metric, cell.kind, TRY_CAST(cell.text AS DOUBLE), n_num::BIGINT,
           attributes, source_file, source_row""",
        rows_from="(SELECT *, unnest(cells) AS cell FROM _evidence_checked WHERE why IS NULL)",
    )
