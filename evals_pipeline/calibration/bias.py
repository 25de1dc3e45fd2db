"""The judge biases seed 002 names, measured per judge (`judge_bias`).

- Length: at the same human label, does a longer output pass more often? A logistic
  regression of the judge's pass on the human label and the standardized log length of the
  output; the length coefficient (log-odds per standard deviation of log length) with a
  bootstrap 95% interval. Measured on the train and dev splits: the test split is looked at
  once, for trust, and nowhere else.
- Position: pairwise comparisons whose verdict changed when the order was swapped, with a
  Wilson interval.
- Self-preference: a judge of the same model family (provider and first word of the model
  name) as an app version it judges is flagged; the release gate's evidence names it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression

from evals_pipeline.calibration.metrics import wilson
from evals_pipeline.judging.client import JudgeClient
from evals_pipeline.judging.panel import subject_verdicts
from evals_pipeline.judging.rubrics import FAILURE_MODE_PREFIX, Rubric
from evals_pipeline.records import CALIBRATION_VERDICTS, GOLD_LABELS, PAIRWISE_VERDICTS

# calibration_verdicts as the judges give them; the output's length is added from the subjects
VERDICT_COLUMNS = [c for c in CALIBRATION_VERDICTS.column_names if c != "output_chars"]
BOOTSTRAP = 200
MIN_FIT = 30  # fewer labelled outputs (or a single class) fit no length coefficient

# Verdicts on gold-labelled outputs of the train and dev splits, with their lengths.
LENGTH_SQL = f"""
SELECT v.judge, v.rubric, v.rubric_version, l.verdict = 'pass' AS human_pass,
       v.verdict = 'pass' AS judge_pass, v.output_chars
FROM {CALIBRATION_VERDICTS} v JOIN {GOLD_LABELS} l ON l.subject_id = v.subject_id
WHERE l.kind = 'pointwise' AND v.rubric NOT LIKE '{FAILURE_MODE_PREFIX}%' AND l.verdict IS NOT NULL AND l.split IN ('train', 'dev')
  AND v.verdict IS NOT NULL AND v.output_chars IS NOT NULL
ORDER BY ALL
"""

FLIPS_SQL = f"""
SELECT judge, count(*) AS n, count(*) FILTER (WHERE NOT position_consistent) AS flips
FROM {PAIRWISE_VERDICTS} WHERE position_consistent IS NOT NULL GROUP BY 1
"""


def with_output_chars(frame: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """`calibration_verdicts` rows with each judged output's length (null when unknown)."""
    lengths = dict(
        zip(subjects["subject_id"], subjects["output"].fillna("").str.len(), strict=True)
    )
    chars = frame["subject_id"].map(lengths).astype("Int64")
    return frame.assign(output_chars=chars)[CALIBRATION_VERDICTS.column_names]


def model_family(model: str) -> str:
    """provider/first word of the model name: openai/gpt-4o-mini -> openai/gpt,
    anthropic/claude-sonnet-4-5 -> anthropic/claude, offline/product-v3 -> offline/product."""
    provider, _, name = model.rpartition("/")
    word = re.match(r"[A-Za-z]+", name)
    return f"{provider}/{(word.group(0) if word else name).lower()}".lstrip("/")


def length_coefficient(
    human_pass: np.ndarray, judge_pass: np.ndarray, chars: np.ndarray, rng: np.random.Generator
) -> tuple[float, float, float] | None:
    """(coefficient, low, high) of the standardized log length, or None when it cannot be
    fitted (too few outputs, one verdict only, or lengths that do not vary)."""
    loglen = np.log1p(chars.astype(float))
    if len(judge_pass) < MIN_FIT or len(set(judge_pass)) < 2 or loglen.std() == 0:
        return None
    x = np.column_stack([human_pass.astype(float), (loglen - loglen.mean()) / loglen.std()])
    y = judge_pass.astype(int)

    def fit(idx: np.ndarray) -> float:
        return float(LogisticRegression(C=np.inf, max_iter=1000).fit(x[idx], y[idx]).coef_[0][1])

    n = len(y)
    point = fit(np.arange(n))
    boots = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        if len(set(y[idx])) == 2:
            boots.append(fit(idx))
    low, high = np.percentile(boots, [2.5, 97.5])
    return point, float(low), float(high)


def judge_bias_rows(
    lengths: pd.DataFrame,
    flips: pd.DataFrame,
    versions: Sequence[tuple[str, str]],
    probe: pd.DataFrame | None = None,
) -> list[tuple]:
    """`judge_bias` rows: per judge x rubric version in `lengths`, and per pairwise judge in
    `flips`. `versions`: (app version, model) pairs the judges judge. `probe`: the length
    probe's paired verdicts (judge, rubric_version, before, after), see `padding_effect`."""
    padded = padding_effect(probe if probe is not None else pd.DataFrame())
    flip = {r.judge: (int(r.n), int(r.flips)) for r in flips.itertuples()}
    keys = list(lengths.groupby(["judge", "rubric", "rubric_version"]).groups)
    keys += [(j, None, None) for j in flip if j not in {k[0] for k in keys}]
    rows = []
    for judge, rubric, version in sorted(keys, key=lambda k: tuple(str(x) for x in k)):
        g = lengths[
            (lengths["judge"] == judge)
            & (lengths["rubric"] == rubric)
            & (lengths["rubric_version"] == version)
        ]
        # a fresh generator per judge: its interval does not depend on the judges before it
        rng = np.random.default_rng(0)
        coef = length_coefficient(
            g["human_pass"].to_numpy(bool),
            g["judge_pass"].to_numpy(bool),
            g["output_chars"].to_numpy(float),
            rng,
        )
        n_pairs, n_flips = flip.get(judge, (0, 0))
        flip_low, flip_high = wilson(n_flips, n_pairs)
        family = model_family(judge)
        same = [v for v, m in versions if model_family(m) == family]
        rows.append(
            (
                judge,
                rubric,
                version,
                len(g),
                *(coef or (None, None, None)),
                None if coef is None else not (coef[1] <= 0 <= coef[2]),
                *padded.get((judge, version), (None,) * 8),
                n_pairs,
                n_flips / n_pairs if n_pairs else None,
                None if math.isnan(flip_low) else flip_low,
                None if math.isnan(flip_high) else flip_high,
                family,
                ", ".join(same) or None,
            )
        )
    return rows


# The length probe (an experiment beside the observational coefficient): the same output with
# a sentence appended that says nothing. A judge that rewards length passes more of them; a
# fair one changes its verdict, if at all, as often one way as the other. The sentence has no
# number, no refusal, no confident phrasing and no word a reference is likely to need.
PADDING = (
    " Thank you for reaching out, and thank you for your patience while we looked into this;"
    " we really appreciate you taking the time to write to us today."
)


def probe_sample(subjects: pd.DataFrame, size: int, salt: str) -> pd.DataFrame:
    """Up to `size` train and dev outputs in a stable hash order, padded (the test split is
    looked at for trust only)."""
    pool = subjects[subjects["split"].isin(["train", "dev"]) & subjects["output"].notna()]
    order = pool["subject_id"].map(lambda s: hashlib.md5(f"{salt}|{s}".encode()).hexdigest())
    chosen = pool.assign(_o=order).sort_values("_o").head(size).drop(columns="_o")
    return chosen.assign(output=chosen["output"] + PADDING)


def padding_effect(probe: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    """(judge, rubric version) -> (n, to_pass, to_fail, shift, shift_low, shift_high,
    p_value, biased) from paired verdicts before and after padding."""
    out = {}
    if probe.empty:
        return out
    for (judge, version), g in probe.groupby(["judge", "rubric_version"]):
        before, after = g["before"].astype(bool), g["after"].astype(bool)
        up, down = int((~before & after).sum()), int((before & ~after).sum())
        p = float(binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0
        n = len(g)
        shift = (up - down) / n
        # the paired difference of two proportions (McNemar's setting), Wald interval
        half = 1.96 * math.sqrt(max((up + down) / n - shift**2, 0.0) / n)
        out[(judge, version)] = (
            n,
            up,
            down,
            shift,
            shift - half,
            shift + half,
            p,
            up > down and p < 0.05,
        )
    return out


def length_probe(
    conn: duckdb.DuckDBPyConnection,
    client: JudgeClient,
    subjects: pd.DataFrame,
    rubric: Rubric,
    judges: Sequence[str],
    size: int,
    progress: Callable[[str], None],
    run_id: str = "",
) -> pd.DataFrame:
    """Each judge's verdict on `size` padded train/dev outputs beside its verdict on the
    original (calibration_verdicts, same rubric version): judge, rubric_version, before, after."""
    sample = probe_sample(subjects, size, rubric.key) if size > 0 else subjects.iloc[0:0]
    columns = ["judge", "rubric_version", "before", "after"]
    if sample.empty:
        return pd.DataFrame(columns=columns)
    after = (
        subject_verdicts(client, conn, sample, rubric, judges, progress, run_id)
        .dropna(subset=["verdict"])
        .rename(columns={"verdict": "after"})
    )
    before = conn.execute(
        f"""SELECT subject_id, judge, verdict AS before FROM {CALIBRATION_VERDICTS}
            WHERE rubric = ? AND rubric_version = ? AND verdict IS NOT NULL""",
        [rubric.name, rubric.version],
    ).df()
    paired = before.merge(after, on=["subject_id", "judge"])
    return paired.assign(
        rubric_version=rubric.version,
        before=paired["before"] == "pass",
        after=paired["after"] == "pass",
    )[columns]


def length_flag(frame: pd.DataFrame) -> pd.Series:
    """judge_bias rows whose judge rewards length: by the probe where it ran (an experiment),
    else by a positive coefficient whose interval excludes 0."""
    probed = frame["padded_biased"].notna()
    coef = frame["length_biased"].fillna(False).astype(bool) & (frame["length_coef"] > 0)
    return (probed & frame["padded_biased"].fillna(False).astype(bool)) | (~probed & coef)
