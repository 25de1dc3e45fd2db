"""Where golden cases get their references: an abstract resource, the simulator's reviewed
references (embedded default) and reviewed files written by a team.

Reviewed file format (`data/golden/reviewed/*.jsonl`, one object per line):

    {"trace_id": "tr_...",                       required: the production trace
     "reference_good": "...",                    required: a high-quality answer
     "reference_borderline": "...",              required: a borderline-acceptable answer
     "why": "known_failure_mode",                optional: real_traffic | known_failure_mode | edge_case
     "case_key": "refund-policy-eu"}             optional: de-duplication key (same question =
                                                  same key); default: the normalized input text

A trace without references is not promoted. Rows that break the format are reported (count
and reasons in the rotation's metadata), never silently used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field

from evals_pipeline.files import is_marker, text_file_lines
from evals_pipeline.paths import data_dir
from evals_pipeline.records import WHY_VALUES, sql_literal
from evals_pipeline.warehouse import registered

REFERENCES_TABLE = "_references"


@dataclass(frozen=True)
class ReferenceLoad:
    rows: int
    rejected: dict[str, int]


class ReferenceSource(ConfigurableResource, ABC):
    """Loads references for candidate traces into temp table `_references`
    (trace_id, case_key, why, reference_good, reference_borderline)."""

    @abstractmethod
    def load(self, conn: duckdb.DuckDBPyConnection) -> ReferenceLoad: ...


class ReviewedFileReferences(ReferenceSource):
    """References a domain expert wrote, as JSONL files in the documented format."""

    folder: str = Field(
        default="",
        description="Folder of *.jsonl reviewed files; empty means <data dir>/golden/reviewed.",
    )

    def load(self, conn: duckdb.DuckDBPyConnection) -> ReferenceLoad:
        folder = Path(self.folder) if self.folder else data_dir() / "golden" / "reviewed"
        files = sorted(p for p in folder.glob("*") if not is_marker(p)) if folder.is_dir() else []
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE {REFERENCES_TABLE} (
                trace_id VARCHAR, case_key VARCHAR, why VARCHAR, reference_good VARCHAR, reference_borderline VARCHAR)"""
        )
        if not files:
            return ReferenceLoad(0, {})
        # Read like every other JSONL file (compression, BOM); a bad line or file is counted
        # by its reason instead of failing the rotation.
        lines: list[str | None] = []
        problems: list[str | None] = []
        for f in files:
            rows, problem = text_file_lines(
                f, (".jsonl",), "JSONL (.jsonl, optionally .gz or .zst)"
            )
            if problem:
                lines.append(None)
                problems.append(problem.split("|", 1)[0])
            lines += [text if ok else None for _, text, ok in rows]
            problems += [None if ok else "invalid_utf8" for _, _, ok in rows]
        batch = pa.table(
            {"line": pa.array(lines, pa.string()), "file_problem": pa.array(problems, pa.string())}
        )
        fields = ", ".join(
            f"j->>'{c}' AS {c}"
            for c in ("trace_id", "reference_good", "reference_borderline", "why", "case_key")
        )
        with registered(conn, _reviewed_lines=batch):
            conn.execute(
                f"""CREATE OR REPLACE TEMP TABLE _reviewed AS
                WITH parsed AS (
                    SELECT file_problem, CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN line::JSON END AS j
                    FROM _reviewed_lines
                )
                SELECT {fields}, CASE
                    WHEN file_problem IS NOT NULL THEN file_problem
                    WHEN j IS NULL THEN 'malformed_json'
                    WHEN coalesce(j->>'trace_id', '') = '' THEN 'missing trace_id'
                    WHEN coalesce(trim(j->>'reference_good'), '') = '' THEN 'missing reference_good'
                    WHEN coalesce(trim(j->>'reference_borderline'), '') = '' THEN 'missing reference_borderline'
                    WHEN j->>'why' IS NOT NULL AND j->>'why' NOT IN ({", ".join(sql_literal(w) for w in WHY_VALUES)}) THEN 'unknown why'
                END AS problem
                FROM parsed"""
            )
        rejected = dict(
            conn.execute(
                "SELECT problem, count(*) FROM _reviewed WHERE problem IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        conn.execute(
            f"""INSERT INTO {REFERENCES_TABLE}
            SELECT trace_id, case_key, why, reference_good, reference_borderline FROM _reviewed WHERE problem IS NULL
            QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY trace_id) = 1"""
        )
        return ReferenceLoad(
            conn.execute(f"SELECT count(*) FROM {REFERENCES_TABLE}").fetchall()[0][0], rejected
        )
