"""The categorizer: a category for the traces no attribute categorized (`uncategorized`), and
its accuracy measured against traces whose category is known, as a judge's is.

Two kinds (`taxonomy.categorizer.kind` in the project file):
- `classifier`: scikit-learn (TF-IDF of the input and output text, logistic regression),
  trained on the traces an attribute (or a flat record) categorized. A trace is assigned a
  category only when the predicted probability reaches `min_confidence`. Its version is a
  digest of what it was trained on: `classifier:<version>`.
- `llm`: a model through litellm (`run_calls`: redacted, cached, costed, budgeted like a
  judge), given the taxonomy's categories and their descriptions: `llm:<model>`.

Measurement: a share of the labelled traces (`measure_share`, by a hash of the id, so the
same traces every run) is held out; the classifier never trains on it. The categorizer
assigns those traces a category as if they had none, and accuracy per category (recall),
precision and Cohen's κ come from scikit-learn.

Sealed traces (the holdout reservoir) have no text in the warehouse. The classifier reads their
text inside the holdout store and writes back only the category. It runs locally, so no text
leaves. The LLM categorizer leaves them `uncategorized`: their text is never sent anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support
from sklearn.pipeline import Pipeline, make_pipeline

from evals_pipeline.judging.client import Call, JudgeClient, run_calls
from evals_pipeline.project import CategorizerSpec
from evals_pipeline.records import RESERVOIR_TRACES, TRACES, UNCATEGORIZED

# Labelled traces a classifier trains on at most (the most recent by a hash order): enough for
# a text classifier, and a fit that stays seconds whatever the history.
MAX_TRAINING = 50_000
# Held-out traces an LLM categorizer is measured on per run (each is a call, cached after).
MAX_LLM_MEASURED = 300
TEXT_CHARS = 2000
LABELLED = "category_source IN ('attribute', 'source')"


def _measured(share: float) -> str:
    """SQL: the trace is in the held-out measurement share (the same traces every run)."""
    return f"(hash(trace_id || '/categorizer') % 10000) < {int(share * 10000)}"


def _text(prefix: str = "") -> str:
    return (
        f"left(coalesce({prefix}input, '') || ' \n ' || coalesce({prefix}output, ''), {TEXT_CHARS})"
    )


@dataclass
class Fitted:
    model: Pipeline
    version: str
    trained_on: int


def fit_classifier(conn: duckdb.DuckDBPyConnection, spec: CategorizerSpec) -> Fitted | None:
    """The classifier trained on labelled, non-sealed traces outside the measurement share;
    None when there are fewer than `min_training` of them or only one category."""
    frame = conn.execute(
        f"""SELECT trace_id, {_text()} AS text, category FROM {TRACES}
        WHERE {LABELLED} AND NOT coalesce(sealed, false) AND category <> '{UNCATEGORIZED}'
          AND NOT {_measured(spec.measure_share)}
        ORDER BY hash(trace_id) LIMIT {MAX_TRAINING}"""
    ).df()
    if len(frame) < spec.min_training or frame["category"].nunique() < 2:
        return None
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True),
        LogisticRegression(max_iter=1000, C=4.0),
    )
    model.fit(frame["text"], frame["category"])
    digest = hashlib.sha256("\n".join(sorted(frame["trace_id"])).encode()).hexdigest()[:10]
    return Fitted(model, digest, len(frame))


def classify(fitted: Fitted, texts: pd.Series, min_confidence: float) -> list[str | None]:
    """Each text's category, or None when the classifier is not confident enough."""
    if texts.empty:
        return []
    proba = fitted.model.predict_proba(texts)
    best = proba.argmax(axis=1)
    classes = fitted.model.classes_
    return [
        str(classes[b]) if p[b] >= min_confidence else None
        for b, p in zip(best, proba, strict=True)
    ]


def llm_calls(
    spec: CategorizerSpec, categories: tuple[str, ...], frame: pd.DataFrame
) -> list[Call]:
    """One call per trace: the categories with their descriptions, the interaction's text."""
    listed = "\n".join(f"- {c}: {spec.descriptions.get(c, '(no description)')}" for c in categories)
    system = (
        "You assign a task category to one interaction with an LLM product.\n"
        f"Categories:\n{listed}\n"
        'Answer with JSON only: {"category": "<one of the names above>"}; '
        f'if none fits, {{"category": "{UNCATEGORIZED}"}}.'
    )
    allowed = (*categories, UNCATEGORIZED)

    def parse(text: str) -> str:
        try:
            value = json.loads(text.strip().removeprefix("```json").removesuffix("```"))["category"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a category answer: {text[:80]!r}") from exc
        if value not in allowed:
            raise ValueError(f"category {value!r} is not in the taxonomy")
        return str(value)

    return [
        Call(
            spec.model,
            [
                {"role": "system", "content": system},
                {"role": "user", "content": f"INTERACTION:\n{text}"},
            ],
            "categorize",
            {"temperature": 0},
            parse,
        )
        for text in frame["text"]
    ]


@dataclass
class Categorized:
    """What one categorizer run did: its name (`classifier:<v>` / `llm:<model>`), the traces it
    was asked about, those it assigned, failed calls (LLM), and sealed traces assigned."""

    name: str
    asked: int = 0
    assigned: int = 0
    errors: int = 0
    sealed_assigned: int = 0
    cost_usd: float = 0.0


def categorize_days(
    conn: duckdb.DuckDBPyConnection,
    days: list[str],
    spec: CategorizerSpec,
    categories: tuple[str, ...],
    client: JudgeClient | None = None,
    reservoir_alias: str | None = None,
) -> Categorized | None:
    """Assign categories to the days' uncategorized traces (`category_source` records how).
    Returns None when no categorizer could be built (too few labelled traces)."""
    day_list = ", ".join(f"DATE '{d}'" for d in days)
    todo = conn.execute(
        f"""SELECT trace_id, {_text()} AS text FROM {TRACES}
        WHERE partition_date IN ({day_list}) AND category = '{UNCATEGORIZED}'
          AND NOT coalesce(sealed, false) ORDER BY trace_id"""
    ).df()
    if spec.kind == "classifier":
        fitted = fit_classifier(conn, spec)
        if fitted is None:
            return None
        done = Categorized(f"classifier:{fitted.version}", asked=len(todo))
        todo["category"] = classify(fitted, todo["text"], spec.min_confidence)
        done.assigned = _write(conn, TRACES.name, todo, done.name)
        if reservoir_alias is not None:
            sealed = conn.execute(
                f"""SELECT trace_id, {_text()} AS text FROM {reservoir_alias}.{RESERVOIR_TRACES.name}
                WHERE partition_date IN ({day_list}) AND category = '{UNCATEGORIZED}' ORDER BY trace_id"""
            ).df()
            sealed["category"] = classify(fitted, sealed["text"], spec.min_confidence)
            done.sealed_assigned = _write(conn, TRACES.name, sealed, done.name)
            _write(conn, f"{reservoir_alias}.{RESERVOIR_TRACES.name}", sealed, done.name)
        return done
    if client is None:
        raise ValueError("an llm categorizer needs the judge client")
    done = Categorized(f"llm:{spec.model}", asked=len(todo))
    if todo.empty:
        return done
    results, stats = run_calls(client, conn, llm_calls(spec, categories, todo))
    todo["category"] = [
        r.parsed if r.error is None and r.parsed != UNCATEGORIZED else None for r in results
    ]
    done.errors, done.cost_usd = stats.errors, stats.cost_usd
    done.assigned = _write(conn, TRACES.name, todo, done.name)
    return done


def _write(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, how: str) -> int:
    assigned = frame.loc[frame["category"].notna(), ["trace_id", "category"]]
    if assigned.empty:
        return 0
    rel = conn.from_df(assigned)
    rel.query(
        "_assigned",
        f"""UPDATE {table} t SET category = a.category, category_source = '{how}'
        FROM _assigned a WHERE t.trace_id = a.trace_id AND t.category = '{UNCATEGORIZED}'""",
    )
    return len(assigned)


def measure(
    conn: duckdb.DuckDBPyConnection,
    spec: CategorizerSpec,
    categories: tuple[str, ...],
    client: JudgeClient | None = None,
) -> tuple[str, pd.DataFrame]:
    """The categorizer's name and its accuracy on the held-out labelled traces: a row per
    category (n, correct, accuracy = recall, precision) and an `all` row (accuracy, κ).
    Empty when there are no held-out labelled traces (or no classifier could be trained)."""
    held_out = conn.execute(
        f"""SELECT trace_id, {_text()} AS text, category FROM {TRACES}
        WHERE {LABELLED} AND NOT coalesce(sealed, false) AND category <> '{UNCATEGORIZED}'
          AND {_measured(spec.measure_share)}
        ORDER BY hash(trace_id)
        {f"LIMIT {MAX_LLM_MEASURED}" if spec.kind == "llm" else ""}"""
    ).df()
    if spec.kind == "classifier":
        fitted = fit_classifier(conn, spec)
        if fitted is None or held_out.empty:
            return "classifier", empty_accuracy()
        name = f"classifier:{fitted.version}"
        predicted = classify(fitted, held_out["text"], spec.min_confidence)
    else:
        name = f"llm:{spec.model}"
        if held_out.empty:
            return name, empty_accuracy()
        if client is None:
            raise ValueError("an llm categorizer needs the judge client")
        results, _ = run_calls(client, conn, llm_calls(spec, categories, held_out))
        predicted = [r.parsed if r.error is None else None for r in results]
    truth = held_out["category"].astype(str).tolist()
    # Not confident / failed / "none fits" count as wrong: the trace would stay uncategorized.
    guess = [p if isinstance(p, str) else UNCATEGORIZED for p in predicted]
    labels = sorted(set(truth))
    precision, recall, _, support = precision_recall_fscore_support(
        truth, guess, labels=labels, zero_division=0
    )
    rows = [
        {
            "categorizer": name,
            "category": c,
            "n": int(n),
            "correct": sum(g == t == c for g, t in zip(guess, truth, strict=True)),
            "accuracy": float(r),
            "precision": float(p),
            "assigned_share": float(
                np.mean([g != UNCATEGORIZED for g, t in zip(guess, truth, strict=True) if t == c])
            ),
            "kappa": None,
        }
        for c, p, r, n in zip(labels, precision, recall, support, strict=True)
    ]
    correct = sum(g == t for g, t in zip(guess, truth, strict=True))
    rows.append(
        {
            "categorizer": name,
            "category": "all",
            "n": len(truth),
            "correct": int(correct),
            "accuracy": correct / len(truth),
            "precision": None,
            "assigned_share": float(np.mean([g != UNCATEGORIZED for g in guess])),
            "kappa": float(cohen_kappa_score(truth, guess))
            if len(set(truth) | set(guess)) > 1
            else None,
        }
    )
    return name, pd.DataFrame(rows)


def empty_accuracy() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "categorizer",
            "category",
            "n",
            "correct",
            "accuracy",
            "precision",
            "assigned_share",
            "kappa",
        ]
    )
