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


def fit_strengths(outcomes: pd.DataFrame, players: list[str]) -> np.ndarray:
    """Log-strengths (mean 0) for `players` from rows (a, b, outcome in {'a', 'b', 'tie'})."""
    index = {p: i for i, p in enumerate(players)}
    rows, ys, ws = [], [], []
    for a, b, outcome in outcomes[["a", "b", "outcome"]].itertuples(index=False):
        x = np.zeros(len(players))
        x[index[a]], x[index[b]] = 1.0, -1.0
        if outcome == "tie":
            rows += [x, x]
            ys += [1, 0]
            ws += [0.5, 0.5]
        else:
            rows.append(x)
            ys.append(1 if outcome == "a" else 0)
            ws.append(1.0)
    if len(set(ys)) < 2:
        # Everybody won (or lost) every game: strengths are unbounded; report them as equal.
        return np.zeros(len(players))
    model = LogisticRegression(fit_intercept=False, C=1e4, max_iter=1000)
    model.fit(np.array(rows), np.array(ys), sample_weight=np.array(ws))
    s = model.coef_[0]
    return s - s.mean()


def bt_ratings(outcomes: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Ratings with 95% bootstrap intervals. `outcomes` has case_id, a, b, outcome."""
    players = sorted(set(outcomes["a"]) | set(outcomes["b"]))
    if not players:
        return pd.DataFrame(
            columns=["app_version", "rating", "ci_low", "ci_high", "comparisons", "win_rate"]
        )
    point = fit_strengths(outcomes, players) * ELO
    rng = np.random.default_rng(seed)
    by_case = {k: g for k, g in outcomes.groupby("case_id")}
    cases = list(by_case)
    boots = np.empty((n_boot, len(players)))
    for i in range(n_boot):
        pick = rng.integers(len(cases), size=len(cases))
        boots[i] = fit_strengths(pd.concat([by_case[cases[j]] for j in pick]), players) * ELO
    score = {p: 0.0 for p in players}
    games = {p: 0 for p in players}
    for a, b, o in outcomes[["a", "b", "outcome"]].itertuples(index=False):
        games[a] += 1
        games[b] += 1
        score[a] += 1.0 if o == "a" else 0.5 if o == "tie" else 0.0
        score[b] += 1.0 if o == "b" else 0.5 if o == "tie" else 0.0
    return pd.DataFrame(
        {
            "app_version": players,
            "rating": point,
            "ci_low": np.percentile(boots, 2.5, axis=0),
            "ci_high": np.percentile(boots, 97.5, axis=0),
            "comparisons": [games[p] for p in players],
            "win_rate": [score[p] / games[p] if games[p] else float("nan") for p in players],
        }
    )
