"""The few-shot examples a rubric version has pinned (chosen by calibration/few_shot.py from
the calibration train split), read where judges are called: a project with
`judges.use_few_shot` judges with them, under the rubric version that names them."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from evals_pipeline.judging.rubrics import Example, Rubric, load_rubric
from evals_pipeline.records import FEW_SHOT_EXAMPLES

if TYPE_CHECKING:
    from evals_pipeline.project import JudgesSpec


def pinned_for(conn: duckdb.DuckDBPyConnection, rubric: Rubric, k: int) -> pd.DataFrame:
    """The examples pinned to (rubric version, k), in prompt order; empty when none are."""
    return conn.execute(
        f"""SELECT * FROM {FEW_SHOT_EXAMPLES} WHERE rubric = ? AND rubric_version = ? AND requested = ?
            ORDER BY position""",
        [rubric.name, rubric.base_version, k],
    ).df()


def with_examples(rubric: Rubric, pinned: pd.DataFrame) -> Rubric:
    """The rubric with the pinned examples in its prompt, under their few-shot version."""
    if pinned.empty:
        return rubric
    examples = tuple(
        Example(r.subject_id, r.input or "", r.output or "", r.verdict, r.critique or "")
        for r in pinned.itertuples(index=False)
    )
    return replace(rubric, version=str(pinned["few_shot_version"].iloc[0]), examples=examples)


def deployed_rubric(
    conn: duckdb.DuckDBPyConnection, rubric: Rubric, few_shot: int, use_few_shot: bool
) -> Rubric:
    """The rubric the judges use: with its pinned examples when the project uses them and
    they are pinned (before the first calibration there are none: zero-shot)."""
    if not (use_few_shot and few_shot > 0):
        return rubric
    return with_examples(rubric, pinned_for(conn, rubric, few_shot))


def project_rubric(
    conn: duckdb.DuckDBPyConnection, judges: JudgesSpec, name: str | None = None
) -> Rubric:
    """The rubric `name` (default: the project's pass/fail rubric) as the judges use it: the
    project's rubric carries its pinned examples when `judges.use_few_shot` is on."""
    rubric = load_rubric(name or judges.rubric)
    if rubric.name != judges.rubric:
        return rubric
    return deployed_rubric(conn, rubric, judges.few_shot, judges.use_few_shot)
