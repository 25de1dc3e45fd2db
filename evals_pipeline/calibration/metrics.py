"""Agreement of a judge with the expert: rates with intervals, kappa, corrected pass rates.

Proportions (TPR, TNR, accuracy) get Wilson score intervals; balanced accuracy and Cohen's
kappa get percentile bootstrap intervals. Kappa and the confusion matrix come from
scikit-learn. A pass rate measured by an imperfect judge is corrected with Rogan-Gladen,
p = (q + TNR - 1) / (TPR + TNR - 1), and its bootstrap interval resamples both the judged
outputs and the calibration set, so the uncertainty of TPR and TNR is carried along.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import cohen_kappa_score, confusion_matrix

Z95 = float(norm.ppf(0.975))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (nan, nan when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0:
        return math.nan
    if len(set(a) | set(b)) == 1:
        return 1.0  # perfect agreement on a single class (sklearn returns nan)
    return float(cohen_kappa_score(a, b))


def _binary_kappa(h: np.ndarray, j: np.ndarray) -> float:
    """Cohen's kappa for two boolean vectors (the same value as sklearn's, without its overhead)."""
    po = float((h == j).mean())
    ph, pj = float(h.mean()), float(j.mean())
    pe = ph * pj + (1 - ph) * (1 - pj)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def bootstrap_interval(values: np.ndarray) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return math.nan, math.nan
    return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))


def _kappas(pairs: np.ndarray, k: int) -> np.ndarray:
    """Cohen's kappa of each row of `pairs` (codes x * k + y of two raters' labels), from its
    confusion counts; 1.0 where both raters used one and the same class (as `kappa`)."""
    rows, n = pairs.shape
    offsets = (np.arange(rows) * k * k)[:, None]
    confusion = np.bincount((pairs + offsets).ravel(), minlength=rows * k * k).reshape(rows, k, k)
    po = np.trace(confusion, axis1=1, axis2=2) / n
    pe = (confusion.sum(axis=2) * confusion.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pe >= 1.0, 1.0, (po - pe) / (1.0 - pe))


def kappa_with_interval(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, resamples: int = 500
) -> tuple[float, float, float]:
    """Cohen's kappa between two raters' labels of the same subjects (scikit-learn's), with a
    95% percentile bootstrap interval over subjects (`rng` is the caller's, so a run is
    reproducible). The resamples are one index matrix, their kappas computed from confusion
    counts at once (the same statistic as `cohen_kappa_score`, tested)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    classes, codes = np.unique(np.concatenate([x, y]).astype(str), return_inverse=True)
    k = len(classes)
    pairs = codes[: len(x)] * k + codes[len(x) :]
    boots = _kappas(pairs[rng.integers(len(x), size=(resamples, len(x)))], k)
    low, high = bootstrap_interval(boots)
    return kappa(x, y), low, high


@dataclass(frozen=True)
class Agreement:
    n: int
    tp: int
    fn: int
    tn: int
    fp: int
    tpr: float
    tpr_ci: tuple[float, float]
    tnr: float
    tnr_ci: tuple[float, float]
    accuracy: float
    accuracy_ci: tuple[float, float]
    balanced_accuracy: float
    balanced_accuracy_ci: tuple[float, float]
    kappa: float
    kappa_ci: tuple[float, float]


def binary_agreement(
    human_pass: np.ndarray, judge_pass: np.ndarray, n_boot: int = 500, seed: int = 0
) -> Agreement:
    """Judge vs expert on the same outputs ('pass' is the positive class)."""
    h = np.asarray(human_pass, dtype=bool)
    j = np.asarray(judge_pass, dtype=bool)
    n = len(h)
    tn, fp, fn, tp = (
        (int(x) for x in confusion_matrix(h, j, labels=[False, True]).ravel())
        if n
        else (0, 0, 0, 0)
    )
    tpr = tp / (tp + fn) if tp + fn else math.nan
    tnr = tn / (tn + fp) if tn + fp else math.nan
    acc = (tp + tn) / n if n else math.nan
    ba = (tpr + tnr) / 2
    rng = np.random.default_rng(seed)
    bas, kappas = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    for i in range(n_boot if n else 0):
        idx = rng.integers(n, size=n)
        hh, jj = h[idx], j[idx]
        pos, neg = hh.sum(), (~hh).sum()
        if pos and neg:
            bas[i] = ((jj & hh).sum() / pos + (~jj & ~hh).sum() / neg) / 2
        kappas[i] = _binary_kappa(hh, jj)
    return Agreement(
        n,
        tp,
        fn,
        tn,
        fp,
        tpr,
        wilson(tp, tp + fn),
        tnr,
        wilson(tn, tn + fp),
        acc,
        wilson(tp + tn, n),
        ba,
        bootstrap_interval(bas),
        kappa(h, j),
        bootstrap_interval(kappas),
    )


def rogan_gladen(observed: float, tpr: float, tnr: float) -> float:
    """True prevalence from an observed rate and the judge's TPR/TNR, clipped to [0, 1]."""
    denom = tpr + tnr - 1
    if not denom > 0:
        return math.nan  # a judge no better than chance cannot be corrected
    return min(1.0, max(0.0, (observed + tnr - 1) / denom))


# A bootstrap interval is reported only when almost every resample could be corrected: with
# more than this share at TPR + TNR <= 1, the percentiles of the rest would describe a
# selected sample (the judge is near chance) and look narrower than the truth.
MAX_UNCORRECTABLE_SHARE = 0.05


class CorrectedRate(NamedTuple):
    """A Rogan-Gladen corrected rate with its bootstrap interval, and what the bootstrap could
    not correct. `low`/`high` are NaN when no honest interval exists, and `note` says why."""

    point: float
    low: float
    high: float
    resamples: int
    uncorrectable: int
    note: str


def corrected_pass_rate(
    judged_pass: np.ndarray,
    calib_human: np.ndarray,
    calib_judge: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
) -> CorrectedRate:
    """The corrected rate and a 95% bootstrap interval over both samples (the judged outputs
    and the calibration set). A judge at chance (TPR + TNR <= 1 on the calibration set) has no
    corrected rate; a resample at chance cannot be corrected and is counted, never silently
    dropped; above `MAX_UNCORRECTABLE_SHARE` of them there is no interval."""
    q = np.asarray(judged_pass, dtype=bool)
    h = np.asarray(calib_human, dtype=bool)
    j = np.asarray(calib_judge, dtype=bool)

    def rates(hh: np.ndarray, jj: np.ndarray) -> tuple[float, float]:
        pos, neg = hh.sum(), (~hh).sum()
        return (
            (jj & hh).sum() / pos if pos else math.nan,
            (~jj & ~hh).sum() / neg if neg else math.nan,
        )

    tpr, tnr = rates(h, j)
    point = rogan_gladen(float(q.mean()) if len(q) else math.nan, tpr, tnr)
    rng = np.random.default_rng(seed)
    boots = np.full(n_boot, np.nan)
    for i in range(n_boot):
        qi = q[rng.integers(len(q), size=len(q))]
        ci = rng.integers(len(h), size=len(h))
        boots[i] = rogan_gladen(float(qi.mean()), *rates(h[ci], j[ci]))
    uncorrectable = int(np.isnan(boots).sum())
    if math.isnan(point):
        youden = tpr + tnr - 1
        why = (
            f"judge at chance on the calibration set (TPR + TNR - 1 = {youden:.3f}): no corrected rate"
            if not math.isnan(youden)
            else "the calibration set lacks passes or fails: TPR or TNR unknown"
        )
        return CorrectedRate(math.nan, math.nan, math.nan, n_boot, uncorrectable, why)
    if uncorrectable > MAX_UNCORRECTABLE_SHARE * n_boot:
        return CorrectedRate(
            point,
            math.nan,
            math.nan,
            n_boot,
            uncorrectable,
            f"judge near chance: {uncorrectable} of {n_boot} resamples had TPR + TNR <= 1; "
            "no interval",
        )
    low, high = bootstrap_interval(boots)
    note = f"{uncorrectable} of {n_boot} resamples uncorrectable" if uncorrectable else ""
    return CorrectedRate(point, low, high, n_boot, uncorrectable, note)


def annotator_pairs(
    labels: pd.DataFrame, rng: np.random.Generator, min_shared: int = 10
) -> list[tuple[object, ...]]:
    """`annotator_agreement` rows: Cohen's kappa with its bootstrap interval for each pair of
    annotators, per label kind, on the subjects both labelled (pairs sharing fewer than
    `min_shared` subjects are left out); over all subjects (segment 'all') and, when
    `labels` has a `segment` column, per segment. `labels`: subject_id, kind, annotator,
    verdict, source_file[, segment]."""
    rows: list[tuple[object, ...]] = []
    for kind, g in labels.groupby("kind"):
        parts = [("all", g)]
        if "segment" in g:
            parts += sorted((s, part) for s, part in g.groupby("segment") if s != "all")
        for segment, part in parts:
            wide = part.pivot_table(
                index="subject_id", columns="annotator", values="verdict", aggfunc="first"
            )
            for a, b in combinations(sorted(wide.columns), 2):
                both = wide[[a, b]].dropna()
                if len(both) < min_shared:
                    continue
                x, y = both[a].to_numpy(), both[b].to_numpy()
                k, low, high = kappa_with_interval(x, y, rng)
                source = ", ".join(sorted(set(part[part["annotator"].isin([a, b])]["source_file"])))
                rows.append(
                    (kind, source, a, b, len(both), float((x == y).mean()), k, low, high, segment)
                )
    return rows
