"""One synthetic run: draw the tuples, generate (cached), remove duplicates, filter with the
trusted realism judges, and decide each input's status. The asset writes what this returns."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.judging.client import JudgeClient, RunStats, run_calls
from evals_pipeline.judging.panel import judge_outputs, majority, subject_verdicts
from evals_pipeline.judging.rubrics import load_rubric
from evals_pipeline.judging.trust import trusted_judges
from evals_pipeline.pools.references import REFERENCES_TABLE
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import ACTIVE_CASES, GOLD_LABELS, SYNTHETIC_INPUTS, SYNTHETIC_WHY
from evals_pipeline.synthetic.dimensions import Dimensions, load_dimensions, sample_tuples
from evals_pipeline.synthetic.generation import (
    closest_pair,
    describe,
    duplicates,
    generation_calls,
    planned_inputs,
)
from evals_pipeline.warehouse import table_names


def realism_subjects(rows: pd.DataFrame) -> pd.DataFrame:
    """What the realism filter judges, as every stage builds it (the same prompt, so one
    cache entry): the tuple as the input, the generated text as the output, no references.
    `rows`: synthetic_id, dimensions (JSON), input."""
    return pd.DataFrame(
        {
            "subject_id": rows["synthetic_id"].to_numpy(),
            "input": [describe(json.loads(d)) for d in rows["dimensions"]],
            "output": rows["input"].to_numpy(),
        }
    )


def _status(row: pd.Series, filtering: bool) -> str:
    def given(value: object) -> bool:
        return (
            value is not None and not (isinstance(value, float) and np.isnan(value)) and value != ""
        )

    if given(row["generation_error"]) or not given(row["input"]):
        return "generation_error"
    if given(row["dup_status"]):
        return str(row["dup_status"])
    if not filtering:
        return "awaiting_trusted_filter"
    if not given(row["filter_verdict"]):
        return "filter_error"
    if row["filter_verdict"] != "pass":
        return "filter_rejected"
    if not row["has_references"]:
        return "awaiting_references"
    return "admitted"


def synthetic_run(
    conn: duckdb.DuckDBPyConnection,
    client: JudgeClient,
    project: ProjectConfig,
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[pd.DataFrame, Dimensions, list[str], RunStats, float]:
    """(`synthetic_inputs` rows, the dimensions, the trusted filter judges, the generation
    calls' stats, the highest similarity between two admitted inputs or an admitted input
    and an active case: below synthetic.near_duplicate unless something is wrong). The
    references of synthetic ids must be loaded in `_references`."""
    spec = project.synthetic
    assert spec is not None
    dims = load_dimensions(project.path(spec.dimensions), project.taxonomy.categories)
    tuples = sample_tuples(dims, spec.tuples, spec.floor, spec.seed)
    frame = planned_inputs(tuples, dims, spec.variants)
    progress(f"{len(tuples)} tuples x {spec.variants} variants from {len(dims.values)} dimensions")
    results, stats = run_calls(
        client, conn, generation_calls(frame, dims, spec.generator), progress, run_id=run_id
    )
    frame["input"] = [(r.response or "").strip() or None for r in results]
    frame["generation_error"] = [r.error for r in results]
    frame["cost_usd"] = [0.0 if r.cached else r.cost_usd for r in results]
    frame["generator"] = spec.generator
    # Inputs already in the active pool from traffic: a synthetic copy of one adds nothing.
    existing = conn.execute(
        f"SELECT case_id, input FROM {ACTIVE_CASES} WHERE why <> '{SYNTHETIC_WHY}' AND input IS NOT NULL ORDER BY case_id"
    ).df()
    found = duplicates(
        list(frame["input"]),
        list(frame["synthetic_id"]),
        list(existing["input"]),
        list(existing["case_id"]),
        spec.near_duplicate,
    )
    frame["dup_status"] = [f[0] for f in found]
    frame["similarity"] = [f[1] for f in found]
    frame["duplicate_of"] = [f[2] for f in found]
    rubric = load_rubric(spec.filter_rubric)
    judges = trusted_judges(conn, spec.filter_judges, rubric)
    unique = frame[frame["input"].notna() & frame["dup_status"].isna()]
    verdict_of: dict[str, str | None] = {}
    if judges and len(unique):
        votes = subject_verdicts(
            client, conn, realism_subjects(unique), rubric, judges, progress, run_id
        )
        decided = majority(votes, ["subject_id"]).set_index("subject_id")["passed"]
        verdict_of = {
            k: ("pass" if v == 1.0 else "fail") for k, v in decided.items() if not np.isnan(v)
        }
    frame["filter_verdict"] = [verdict_of.get(i) for i in frame["synthetic_id"]]
    frame["filter_judges"] = ", ".join(judges) or None
    with_refs = {
        r[0]
        for r in conn.execute(
            f"SELECT trace_id FROM {REFERENCES_TABLE} WHERE starts_with(trace_id, 'syn_')"
        ).fetchall()
    }
    frame["has_references"] = frame["synthetic_id"].isin(with_refs)
    frame["status"] = [_status(r, bool(judges)) for _, r in frame.iterrows()]
    # One input per tuple: a later variant of a tuple that already has one admitted is spare.
    first = frame[frame["status"] == "admitted"].groupby("tuple_index")["variant"].transform("min")
    spare = first.index[frame.loc[first.index, "variant"] != first]
    frame.loc[spare, "status"] = "spare"
    admitted = list(frame.loc[frame["status"] == "admitted", "input"])
    closest = closest_pair(admitted, list(frame["input"].dropna()), list(existing["input"]))
    return frame[SYNTHETIC_INPUTS.column_names], dims, judges, stats, closest


# The gold-labelled synthetic inputs (an expert's realism labels, subject = synthetic id).
LABELLED_SQL = f"""
SELECT s.synthetic_id, s.dimensions, s.input, s.category
FROM {SYNTHETIC_INPUTS} s JOIN {GOLD_LABELS} l ON l.subject_id = s.synthetic_id
WHERE l.kind = 'pointwise' AND l.verdict IS NOT NULL AND s.input IS NOT NULL
ORDER BY s.synthetic_id
"""


def realism_calibration(
    conn: duckdb.DuckDBPyConnection,
    client: JudgeClient,
    project: ProjectConfig,
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The realism filter's verdicts on the expert-labelled synthetic inputs, for
    `calibration_verdicts` (subject_id, category, judge, rubric, rubric_version, verdict,
    error), and the subjects judged (subject_id, output). Empty without a synthetic block or
    labels."""
    spec = project.synthetic
    columns = ["subject_id", "category", "judge", "rubric", "rubric_version", "verdict", "error"]
    if spec is None or SYNTHETIC_INPUTS.name not in table_names(conn):
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=["subject_id", "output"])
    labelled = conn.execute(LABELLED_SQL).df()
    progress(f"{len(labelled):,} expert-labelled synthetic inputs for the realism filter")
    subjects = realism_subjects(labelled)
    if subjects.empty:
        return pd.DataFrame(columns=columns), subjects[["subject_id", "output"]]
    rubric = load_rubric(spec.filter_rubric)
    judged, _ = judge_outputs(
        client,
        conn,
        [((r["subject_id"],), r, [rubric]) for r in subjects.to_dict("records")],
        list(spec.filter_judges),
        Counter(),
        progress,
        run_id,
    )
    category = dict(zip(labelled["synthetic_id"], labelled["category"], strict=True))
    rows = [
        (
            j.subject[0],
            category[j.subject[0]],
            j.judge,
            rubric.name,
            rubric.version,
            j.verdict,
            j.error,
        )
        for j in judged
    ]
    return pd.DataFrame(rows, columns=columns), subjects[["subject_id", "output"]]
