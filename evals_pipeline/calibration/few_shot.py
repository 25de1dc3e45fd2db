"""Few-shot examples from the calibration train split (seeds 001, 004), pinned per rubric
version, and what they change on dev.

The train split exists for this: its labels never measure a judge, so showing them to the
judge costs no measurement. Dev and test items are never examples (dev measures the change,
test decides trust). The choice is made once per rubric version and k, recorded in
`few_shot_examples`, and never redrawn: re-labelling or new labels do not move the prompt
under a calibrated judge. A prompt with examples is a rubric version of its own
(`<version>+fs<k>.<digest>`), so its verdicts, calibration and trust are kept apart from the
zero-shot prompt's and a cached zero-shot verdict is never reused for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from evals_pipeline.judging.few_shot import pinned_for, with_examples
from evals_pipeline.judging.pii import redact
from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.records import (
    CALIBRATION_VERDICTS,
    FEW_SHOT_EXAMPLES,
    GOLD_LABELS,
    HUMAN_LABELS,
)
from evals_pipeline.warehouse import registered

if TYPE_CHECKING:
    from evals_pipeline.project import JudgesSpec

# The expert's critique of each train subject: of the labels that agree with the gold label,
# the principal annotator's first, then the newest; and whether two or more annotators gave
# the subject the same label (the surest examples: a mislabelled example teaches the error).
CRITIQUES_SQL = f"""
SELECT l.subject_id, arg_max(coalesce(h.critique, ''), (h.annotator = ?, h.labelled_at, h.critique IS NOT NULL)) AS critique,
       any_value(l.annotators >= 2 AND l.agreeing = l.annotators) AS agreed
FROM {GOLD_LABELS} l JOIN {HUMAN_LABELS} h
  ON h.subject_id = l.subject_id AND h.kind = 'pointwise' AND h.current AND h.verdict = l.verdict
WHERE l.kind = 'pointwise' AND l.split = 'train'
GROUP BY 1
"""


def example_candidates(
    conn: duckdb.DuckDBPyConnection, subjects: pd.DataFrame, principal: str
) -> pd.DataFrame:
    """The train subjects that can be examples: an output, a gold pass/fail, and for a fail
    the expert's critique (a fail without its reason teaches the judge nothing)."""
    train = subjects[(subjects["split"] == "train") & subjects["output"].notna()]
    critiques = conn.execute(CRITIQUES_SQL, [principal]).df()
    out = train.merge(critiques, on="subject_id", how="left")
    out["critique"] = out["critique"].fillna("").str.strip()
    out["agreed"] = out["agreed"].fillna(False).astype(bool)
    out["verdict"] = out["human_pass"].map({True: "pass", False: "fail"})
    return out[(out["verdict"] == "pass") | (out["critique"] != "")].reset_index(drop=True)


def choose_examples(candidates: pd.DataFrame, k: int, salt: str) -> pd.DataFrame:
    """Up to k examples, half pass and half fail (the rest from the other class when one
    runs short), taken round-robin over categories (most labelled first); within a category,
    by `priority` when given (see `informative_first`), else items annotators agree on
    (`agreed`) first, then in a stable hash order salted by the rubric. Listed pass, fail,
    pass, ... so neither class comes last."""
    if k <= 0 or candidates.empty:
        return candidates.iloc[0:0].assign(position=pd.Series(dtype="int64"))
    if not (candidates["split"] == "train").all():
        raise ValueError("few-shot examples come from the train split only")
    agreed = candidates.get("agreed", pd.Series(False, index=candidates.index))
    frame = candidates.assign(
        _unsure=candidates["priority"] if "priority" in candidates else ~agreed.astype(bool),
        _order=[hashlib.md5(f"{salt}|{s}".encode()).hexdigest() for s in candidates["subject_id"]],
    ).sort_values(["_unsure", "_order"], kind="stable")
    ranked_categories = (
        frame["category"].value_counts().sort_index().sort_values(ascending=False, kind="stable")
    )
    per_class: dict[str, list[pd.Series]] = {}
    for verdict in ("pass", "fail"):
        part = frame[frame["verdict"] == verdict]
        queues = {c: list(g.itertuples(index=False)) for c, g in part.groupby("category")}
        picked: list = []
        while any(queues.values()):
            for category in ranked_categories.index:
                if queues.get(category):
                    picked.append(queues[category].pop(0))
        per_class[verdict] = picked
    fails = min(k // 2, len(per_class["fail"]))
    passes = min(k - fails, len(per_class["pass"]))
    fails = min(k - passes, len(per_class["fail"]))
    chosen = []
    for i in range(max(passes, fails)):
        chosen += per_class["pass"][i : i + 1] if i < passes else []
        chosen += per_class["fail"][i : i + 1] if i < fails else []
    out = pd.DataFrame(chosen, columns=frame.columns).drop(columns=["_unsure", "_order"])
    return out.assign(position=range(1, len(out) + 1)).reset_index(drop=True)


def few_shot_version(rubric: Rubric, subject_ids: list[str]) -> str:
    digest = hashlib.md5("\x1f".join(subject_ids).encode()).hexdigest()[:6]
    return f"{rubric.base_version}+fs{len(subject_ids)}.{digest}"


def pin_examples(
    conn: duckdb.DuckDBPyConnection,
    rubric: Rubric,
    k: int,
    candidates: pd.DataFrame,
    rank: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, bool]:
    """The examples of this rubric version: the pinned ones, or (first time) a fresh choice
    that is recorded, the candidates ranked first by `rank` (e.g. `informative_first`).
    Returns (examples, newly pinned)."""
    pinned = pinned_for(conn, rubric, k)
    if not pinned.empty or k <= 0:
        return pinned, False
    chosen = choose_examples(rank(candidates) if rank else candidates, k, rubric.key)
    if chosen.empty:
        return pinned, False
    rows = chosen.assign(
        rubric=rubric.name,
        rubric_version=rubric.base_version,
        few_shot_version=few_shot_version(rubric, chosen["subject_id"].tolist()),
        pinned_at=datetime.now(UTC).replace(tzinfo=None),
        requested=k,
    )
    with registered(conn, _pins=rows[[*FEW_SHOT_EXAMPLES.column_names]]):
        conn.execute(f"INSERT INTO {FEW_SHOT_EXAMPLES} SELECT * FROM _pins")
    return pinned_for(conn, rubric, k), True


# Paired dev verdicts of each judge, zero-shot and with the examples, with the gold label.
PAIRED_DEV_SQL = """
SELECT z.judge, z.category, z.subject_id, z.verdict = 'pass' AS zero_pass, f.verdict = 'pass' AS few_pass,
       g.verdict = 'pass' AS human_pass
FROM {verdicts} z
JOIN {verdicts} f ON f.subject_id = z.subject_id AND f.judge = z.judge AND f.rubric = z.rubric
JOIN {gold} g ON g.subject_id = z.subject_id AND g.kind = 'pointwise' AND g.split = 'dev'
WHERE z.rubric = ? AND z.rubric_version = ? AND f.rubric_version = ?
  AND z.verdict IS NOT NULL AND f.verdict IS NOT NULL AND g.verdict IS NOT NULL
ORDER BY z.judge, z.subject_id
"""


def _rates(truth: pd.Series, said: pd.Series) -> tuple[float, float | None, float | None, float]:
    agreement = float((truth == said).mean())
    tpr = float(said[truth].mean()) if truth.any() else None
    tnr = float((~said[~truth]).mean()) if (~truth).any() else None
    both = truth.nunique() > 1 or said.nunique() > 1
    kappa = float(cohen_kappa_score(truth, said)) if both else float("nan")
    return agreement, tpr, tnr, kappa


def few_shot_effect(paired: pd.DataFrame) -> pd.DataFrame:
    """Per judge x category (and 'all'): dev agreement, kappa, TPR and TNR without and with
    the examples on the same outputs, and an exact McNemar test of the change."""
    rows = []
    for (judge, category), part in pd.concat([paired, paired.assign(category="all")]).groupby(
        ["judge", "category"], sort=True
    ):
        truth = part["human_pass"].astype(bool)
        zero, few = part["zero_pass"].astype(bool), part["few_pass"].astype(bool)
        a0, tpr0, tnr0, k0 = _rates(truth, zero)
        a1, tpr1, tnr1, k1 = _rates(truth, few)
        fixed = int(((zero != truth) & (few == truth)).sum())
        broken = int(((zero == truth) & (few != truth)).sum())
        p = binomtest(fixed, fixed + broken, 0.5).pvalue if fixed + broken else 1.0
        rows.append(
            (judge, category, len(part), a0, a1, k0, k1, tpr0, tpr1, tnr0, tnr1, fixed, broken, p)
        )
    return pd.DataFrame(
        rows,
        columns=[
            "judge",
            "category",
            "n",
            "agreement_without",
            "agreement_with",
            "kappa_without",
            "kappa_with",
            "tpr_without",
            "tpr_with",
            "tnr_without",
            "tnr_with",
            "fixed",
            "broken",
            "p_value",
        ],
    )


def measured_effect(conn: duckdb.DuckDBPyConnection, rubric: Rubric, version: str) -> pd.DataFrame:
    """few_shot_effect's rows from calibration_verdicts: zero-shot `rubric` vs `version`."""
    sql = PAIRED_DEV_SQL.format(verdicts=CALIBRATION_VERDICTS, gold=GOLD_LABELS)
    return few_shot_effect(conn.execute(sql, [rubric.name, rubric.base_version, version]).df())


def redacted_examples(candidates: pd.DataFrame) -> pd.DataFrame:
    """Examples go into every prompt: PII is redacted from them before they are pinned."""
    return candidates.assign(
        **{col: candidates[col].map(redact) for col in ("input", "output", "critique")}
    )


def calibrated_prompts(
    conn: duckdb.DuckDBPyConnection, rubric: Rubric, judges: JudgesSpec
) -> tuple[Rubric, Rubric | None]:
    """(the prompt the judges use, the other one measured on dev beside it): with pinned
    examples, both the zero-shot and the few-shot prompt are calibrated; without, only one."""
    if judges.rubric != rubric.name:
        return rubric, None
    shots = with_examples(rubric, pinned_for(conn, rubric, judges.few_shot))
    if not shots.examples:
        return rubric, None
    return (shots, rubric) if judges.use_few_shot else (rubric, shots)


def with_prompts(
    subjects: pd.DataFrame,
    deployed: Rubric,
    other: Rubric | None,
    modes: Sequence[tuple[str, Rubric]] = (),
) -> list[tuple[tuple[str, str], dict, list[Rubric]]]:
    """(key, row, prompts) per labelled output: the deployed prompt judges every one; the
    other pass/fail prompt only dev outputs (train holds the examples themselves, and test
    decides trust for the deployed prompt alone); each enabled failure mode's rubric the dev
    and test outputs (an LLM judge's train numbers measure nothing: train is few-shot
    material, and a mode judge's cost grows with every labelled output)."""
    mode_rubrics = [r for _, r in modes]
    return [
        (
            (r["subject_id"], r["category"]),
            r,
            [deployed]
            + ([other] if other is not None and r["split"] == "dev" else [])
            + (mode_rubrics if r["split"] in ("dev", "test") else []),
        )
        for r in subjects.to_dict("records")
    ]


# Pinned examples that are not (or no longer) train items: the blocking check's rows.
EXAMPLES_OUTSIDE_TRAIN_SQL = f"""
SELECT e.rubric, e.few_shot_version, e.subject_id, l.split
FROM {FEW_SHOT_EXAMPLES} e
LEFT JOIN {GOLD_LABELS} l ON l.subject_id = e.subject_id AND l.kind = 'pointwise'
WHERE l.split IN ('dev', 'test')
ORDER BY ALL
"""


def informative_first(candidates: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Candidates with a `priority` (lower first) from the panel's zero-shot verdicts on them
    (`verdicts`: subject_id, judge, verdict). An example teaches most where a judge gets it
    wrong, but an item every judge gets "wrong" is as likely the expert's slip, and an
    example with a wrong label teaches the error. So: 0 a judge errs and two annotators agree
    on the label; 1 the panel splits; 2 every judge agrees with the expert; 3 every judge
    disagrees and one annotator labelled it (a suspect label)."""
    valid = verdicts.dropna(subset=["verdict"]).merge(
        candidates[["subject_id", "verdict"]].rename(columns={"verdict": "expert"}), on="subject_id"
    )
    wrong = (
        valid.assign(wrong=valid["verdict"] != valid["expert"])
        .groupby("subject_id")["wrong"]
        .agg(["sum", "count"])
    )
    out = candidates.merge(wrong, left_on="subject_id", right_index=True, how="left")
    n_wrong, n_valid = out["sum"].fillna(0), out["count"].fillna(0)
    agreed = out.get("agreed", pd.Series(False, index=out.index)).astype(bool)
    priority = pd.Series(2, index=out.index)
    priority[(n_wrong > 0) & (n_wrong < n_valid)] = 1
    priority[(n_wrong == n_valid) & (n_valid > 0) & ~agreed] = 3
    priority[(n_wrong > 0) & agreed] = 0
    return out.drop(columns=["sum", "count"]).assign(priority=priority)
