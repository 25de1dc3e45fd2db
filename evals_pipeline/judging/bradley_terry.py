"""Bradley-Terry ratings from pairwise outcomes, with bootstrap confidence intervals.

P(i beats j) = 1 / (1 + exp(-(s_i - s_j))). The strengths are fitted as a logistic
regression without intercept on +1/-1 indicator rows (scikit-learn), ties counted as half a
win for each side; a tiny L2 penalty pins the otherwise free constant, and strengths are
centred to mean 0. Reported on the Elo scale (400 / ln 10 per unit of log-strength).
Intervals: percentile bootstrap over cases (a case's comparisons are resampled together).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

ELO = 400 / math.log(10)


def _design(
    outcomes: pd.DataFrame, players: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logistic design of the comparisons, one row per (a, b, result): X (+1 for a, -1
    for b), y (a won), and a per-case count matrix (cases x design rows), ties counting half a
    win for each side. The fit depends on the comparisons only through these counts, so a
    bootstrap resample of cases is a weighting of the same few rows."""
    index = {p: i for i, p in enumerate(players)}
    keys: dict[tuple[int, int, int], int] = {}
    entries: list[tuple[int, int, float]] = []  # (case row, design row, weight)
    # cases in sorted order: a seed draws the same resamples as a groupby over cases would
    cases = {c: i for i, c in enumerate(sorted(pd.unique(outcomes["case_id"])))}
    for case, a, b, outcome in outcomes[["case_id", "a", "b", "outcome"]].itertuples(index=False):
        results = ((1, 0.5), (0, 0.5)) if outcome == "tie" else ((int(outcome == "a"), 1.0),)
        for won, weight in results:
            row = keys.setdefault((index[a], index[b], won), len(keys))
            entries.append((cases[case], row, weight))
    x = np.zeros((len(keys), len(players)))
    y = np.zeros(len(keys), dtype=int)
    for (i, j, won), row in keys.items():
        x[row, i], x[row, j], y[row] = 1.0, -1.0, won
    counts = np.zeros((len(cases), len(keys)))
    for case, row, weight in entries:
        counts[case, row] += weight
    return x, y, counts


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Log-strengths (mean 0) from the weighted design rows."""
    used = weights > 0
    if len(set(y[used])) < 2:
        # Everybody won (or lost) every game: strengths are unbounded; report them as equal.
        return np.zeros(x.shape[1])
    model = LogisticRegression(fit_intercept=False, C=1e4, tol=1e-8, max_iter=1000)
    model.fit(x[used], y[used], sample_weight=weights[used])
    s = model.coef_[0]
    return s - s.mean()


def fit_strengths(outcomes: pd.DataFrame, players: list[str]) -> np.ndarray:
    """Log-strengths (mean 0) for `players` from rows (case_id, a, b, outcome in {'a', 'b',
    'tie'})."""
    if "case_id" not in outcomes:
        outcomes = outcomes.assign(case_id=range(len(outcomes)))
    x, y, counts = _design(outcomes, players)
    return _fit(x, y, counts.sum(axis=0))


def bt_ratings(outcomes: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Ratings with 95% bootstrap intervals. `outcomes` has case_id, a, b, outcome.

    A resample of cases is drawn as an index array and becomes weights on the design rows
    (multiplicities times each case's counts, one matrix product for all resamples)."""
    players = sorted(set(outcomes["a"]) | set(outcomes["b"]))
    if not players:
        return pd.DataFrame(
            columns=["app_version", "rating", "ci_low", "ci_high", "comparisons", "win_rate"]
        )
    x, y, counts = _design(outcomes, players)
    point = _fit(x, y, counts.sum(axis=0)) * ELO
    rng = np.random.default_rng(seed)
    n_cases = counts.shape[0]
    picks = rng.integers(n_cases, size=(n_boot, n_cases))
    multiplicity = np.stack([np.bincount(p, minlength=n_cases) for p in picks])
    weights = multiplicity @ counts
    boots = np.array([_fit(x, y, w) for w in weights]).reshape(n_boot, len(players)) * ELO
    games = pd.concat([outcomes["a"], outcomes["b"]]).value_counts()
    wins = (outcomes["outcome"].eq("a") * 1.0 + outcomes["outcome"].eq("tie") * 0.5).groupby(
        outcomes["a"]
    ).sum().reindex(players, fill_value=0.0) + (
        outcomes["outcome"].eq("b") * 1.0 + outcomes["outcome"].eq("tie") * 0.5
    ).groupby(outcomes["b"]).sum().reindex(players, fill_value=0.0)
    n_games = games.reindex(players, fill_value=0).to_numpy()
    return pd.DataFrame(
        {
            "app_version": players,
            "rating": point,
            "ci_low": np.percentile(boots, 2.5, axis=0),
            "ci_high": np.percentile(boots, 97.5, axis=0),
            "comparisons": n_games,
            "win_rate": np.where(n_games > 0, wins.to_numpy() / np.maximum(n_games, 1), np.nan),
        }
    )
