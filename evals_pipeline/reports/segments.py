"""Per-segment scores, paired deltas against a baseline version, and the release gates.

Every app version answers the same active cases, so a version's change against the baseline
is measured *paired*, case by case: delta = mean(score_v - score_base) over the cells'
cases, with the standard error of those differences. That is far more sensitive than
comparing two independent pass rates, and it is what lets a small golden set find a slice
regression. Aggregates across categories are post-stratified to the traffic mix (each
category weighted by its share of production traffic), so a golden set that over-samples
rare categories does not distort the headline number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from evals_pipeline.calibration.metrics import Z95, wilson
from evals_pipeline.records import SYNTHETIC_SEGMENT, SYNTHETIC_WHY


def paired_cells(scores: pd.DataFrame, baseline: str, by: list[str]) -> pd.DataFrame:
    """Per (app_version, *by): n, score, SE, 95% CI and the paired delta vs `baseline`.

    `scores` has case_id, app_version, score (0/1 or a mean of dimensions) and the `by` columns.
    """
    rows = []
    base = scores[scores["app_version"] == baseline].set_index("case_id")["score"]
    for key, g in scores.groupby(["app_version", *by], dropna=False):
        version, *cell = key if isinstance(key, tuple) else (key,)
        x = g["score"].to_numpy(dtype=float)
        n = len(x)
        mean = float(x.mean()) if n else math.nan
        se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        if set(np.unique(x)) <= {0.0, 1.0}:
            low, high = wilson(int(x.sum()), n)
        else:
            low, high = mean - Z95 * se, mean + Z95 * se
        paired = g.set_index("case_id")["score"].to_frame("v").join(base.rename("b"), how="inner")
        d = (paired["v"] - paired["b"]).to_numpy(dtype=float)
        delta = float(d.mean()) if len(d) else math.nan
        d_se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        rows.append(
            {
                "app_version": version,
                **dict(zip(by, cell, strict=True)),
                "n": n,
                "score": mean,
                "std_error": se,
                "ci_low": low,
                "ci_high": high,
                "delta_vs_baseline": delta if version != baseline else 0.0,
                "delta_std_error": d_se if version != baseline else 0.0,
                "delta_ci_low": delta - Z95 * d_se if version != baseline else 0.0,
                "delta_ci_high": delta + Z95 * d_se if version != baseline else 0.0,
                "n_paired": len(d),
            }
        )
    return pd.DataFrame(rows)


def post_stratified(cells: pd.DataFrame, traffic_share: dict[str, float]) -> pd.DataFrame:
    """Per app version: category scores and deltas weighted by traffic share."""
    out = []
    for version, g in cells.groupby("app_version"):
        g = g[g["category"].isin(traffic_share)]
        w = g["category"].map(traffic_share).to_numpy()
        w = w / w.sum()
        out.append(
            {
                "app_version": version,
                "score": float((w * g["score"]).sum()),
                "std_error": float(math.sqrt((w**2 * g["std_error"].fillna(0) ** 2).sum())),
                "delta_vs_baseline": float((w * g["delta_vs_baseline"]).sum()),
                "delta_std_error": float(
                    math.sqrt((w**2 * g["delta_std_error"].fillna(0) ** 2).sum())
                ),
            }
        )
    return pd.DataFrame(out)


def segment_verdicts(
    cells: pd.DataFrame, max_regression: float = 0.03, flag_se: float = 2.0, alpha: float = 0.05
) -> pd.DataFrame:
    """Each cell of a non-baseline version gets:
    - `flagged`: the change in either direction exceeds `flag_se` standard errors (to look at);
    - `regressed`: worse by more than `max_regression` *and* significantly so, one-sided at
      `alpha` with a Bonferroni correction over the cells of that version, so a version with
      no real change fails the gate in at most `alpha` of releases (tested by simulation).
    """
    c = cells.copy()
    z = c["delta_vs_baseline"] / c["delta_std_error"].replace(0, np.nan)
    k = c.groupby("app_version")["n"].transform("size").clip(lower=1)
    z_needed = norm.ppf(1 - alpha / k)
    c["z"] = z
    c["flagged"] = z.abs() > flag_se
    c["regressed"] = (c["delta_vs_baseline"] < -max_regression) & (z < -z_needed)
    return c


def segment_frame(
    scores: pd.DataFrame,
    baseline: str,
    traffic_share: dict[str, float],
    max_regression: float,
    flag_se: float,
) -> pd.DataFrame:
    """The segment report of every scorer: cells (category x user segment), categories, and
    the overall score re-weighted to the traffic mix, each with its delta vs `baseline`.
    Admitted synthetic inputs (`why` synthetic) are reported apart, at level `synthetic` per
    category and over all of them: they are not traffic, so they weigh in no traffic figure
    and no gate. `scores`: case_id, app_version, category, user_segment, scorer, score, why."""
    synthetic = (
        scores["why"].eq(SYNTHETIC_WHY) if "why" in scores else pd.Series(False, scores.index)
    )
    frames = [_synthetic_rows(scores[synthetic], baseline)]
    scores = scores[~synthetic]
    for scorer, g in scores.groupby("scorer"):
        for level, by in (("cell", ["category", "user_segment"]), ("category", ["category"])):
            cells = segment_verdicts(paired_cells(g, baseline, by), max_regression, flag_se)
            frames.append(cells.assign(level=level, scorer=scorer))
        overall = post_stratified(frames[-1], traffic_share)
        for name, point, se in (
            ("ci", "score", "std_error"),
            ("delta_ci", "delta_vs_baseline", "delta_std_error"),
        ):
            overall[f"{name}_low"] = overall[point] - 1.96 * overall[se]
            overall[f"{name}_high"] = overall[point] + 1.96 * overall[se]
        overall["n"] = g.groupby("app_version").size().reindex(overall["app_version"]).to_numpy()
        frames.append(
            overall.assign(
                scorer=scorer, level="overall", category="all", flagged=None, regressed=None
            )
        )
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True)
    frame["user_segment"] = frame.get("user_segment", pd.Series(dtype=object)).fillna("all")
    frame["baseline"] = baseline
    return frame


def _synthetic_rows(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Level `synthetic`: each scorer's pass rate on the admitted synthetic inputs, per
    category and over all of them ('all', unweighted), with the paired delta vs `baseline`."""
    frames = []
    for scorer, g in scores.groupby("scorer"):
        for part in (g, g.assign(category="all")):
            frames.append(paired_cells(part, baseline, ["category"]).assign(scorer=scorer))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).assign(
        level="synthetic", user_segment=SYNTHETIC_SEGMENT, flagged=None, regressed=None
    )
