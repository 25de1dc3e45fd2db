"""The simplest thing that might work: a scikit-learn classifier judge.

Features of (output, references) that need no model: how much of the borderline reference's
content the output says, how much of the high-quality reference's, whether it states numbers
the references do not, its length relative to the reference, confident and refusal phrasing.
A logistic regression is fitted on the train split's expert labels only and then measured by
the same calibration as the LLM judges.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evals_pipeline.judging.text_features import CONFIDENT, NUMBER, REFUSAL, content_words

CLASSIFIER_JUDGE = "sklearn/logistic-features"


def features(output: str, reference_good: str, reference_borderline: str) -> list[float]:
    said = set(content_words(output))
    border = set(content_words(reference_borderline))
    good = set(content_words(reference_good))
    known = set(NUMBER.findall(reference_good)) | set(NUMBER.findall(reference_borderline))
    foreign = [n for n in NUMBER.findall(output) if n not in known] if known else []
    return [
        len(border & said) / max(1, len(border)),
        len(good & said) / max(1, len(good)),
        float(len(foreign) > 0),
        len(output.split()) / max(1, len(reference_good.split())),
        float(bool(CONFIDENT.search(output))),
        float(bool(REFUSAL.search(output))),
    ]


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.array(
        [
            features(o or "", g or "", b or "")
            for o, g, b in frame[["output", "reference_good", "reference_borderline"]].itertuples(
                index=False
            )
        ]
    )


def train_classifier(train: pd.DataFrame, seed: int = 0):  # -> fitted sklearn Pipeline, or None
    """Fit on rows with a boolean `human_pass`; None when the train split lacks both classes."""
    if train.empty or train["human_pass"].nunique() < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed, max_iter=1000))
    model.fit(feature_matrix(train), train["human_pass"].astype(bool))
    return model


def classifier_verdicts(
    subjects: pd.DataFrame, rubric_name: str, rubric_version: str
) -> list[tuple[object, ...]]:
    """`calibration_verdicts` rows of the classifier judge: fitted on the train split only,
    it predicts every labelled subject (no rows when the train split cannot fit it)."""
    model = train_classifier(subjects[subjects["split"] == "train"])
    if model is None or not len(subjects):
        return []
    predicted = model.predict(feature_matrix(subjects))
    return [
        (s, c, CLASSIFIER_JUDGE, rubric_name, rubric_version, "pass" if p else "fail", None)
        for s, c, p in zip(subjects["subject_id"], subjects["category"], predicted, strict=True)
    ]
