"""The embedded default's references: the simulator's topic bank stands in for an expert's
reviewed references (a team's come from reviewed files, `pools.references`)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from pydantic import Field

from evals_pipeline.paths import traffic_dir
from evals_pipeline.pools.references import REFERENCES_TABLE, ReferenceLoad, ReferenceSource
from evals_pipeline.records import SYNTHETIC_INPUTS, sql_literal
from evals_pipeline.warehouse import table_names

# The traffic's form of a question (offline_models._QUESTION, in DuckDB's regex dialect).
QUESTION_RE = r"^(?:Hi, |Quick question: |Hello! |Hey - |Please help: )?(.*?) \(ticket #\d+\)\s*$"


class SimulatorReferences(ReferenceSource):
    """The embedded default: the simulator's topic bank stands in for an expert's reviewed
    references; the topic is the de-duplication key. Synthetic inputs that ask a question of
    the bank get its references too (the expert reviewing them)."""

    root: str = Field(
        default="", description="Simulator output folder; empty means <data dir>/traffic."
    )

    def load(self, conn: duckdb.DuckDBPyConnection) -> ReferenceLoad:
        truth = Path(self.root) if self.root else traffic_dir()
        trace_truth, topics = (
            truth / "truth" / "trace_truth.parquet",
            truth / "truth" / "topics.parquet",
        )
        for p in (trace_truth, topics):
            if not p.exists():
                raise FileNotFoundError(
                    f"simulator references missing: {p} (run the simulator first)"
                )
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE {REFERENCES_TABLE} AS
            SELECT t.trace_id, t.topic_id AS case_key, NULL::VARCHAR AS why,
                   k.reference_good, k.reference_borderline
            FROM read_parquet({sql_literal(str(trace_truth))}) t
            JOIN read_parquet({sql_literal(str(topics))}) k USING (topic_id)"""
        )
        if SYNTHETIC_INPUTS.name in table_names(conn):
            conn.execute(
                f"""INSERT INTO {REFERENCES_TABLE}
                SELECT s.synthetic_id, k.topic_id, NULL, k.reference_good, k.reference_borderline
                FROM {SYNTHETIC_INPUTS} s JOIN read_parquet({sql_literal(str(topics))}) k
                  ON k.question = regexp_extract(s.input, {sql_literal(QUESTION_RE)}, 1)
                WHERE s.input IS NOT NULL"""
            )
        return ReferenceLoad(
            conn.execute(f"SELECT count(*) FROM {REFERENCES_TABLE}").fetchall()[0][0], {}
        )
