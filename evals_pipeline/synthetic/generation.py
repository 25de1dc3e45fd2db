"""From tuples to admitted inputs: the generation calls, de-duplication, the realism filter's
subjects, and each input's status. Plain functions over frames; the asset wires them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import linear_kernel

from evals_pipeline.judging.client import Call
from evals_pipeline.synthetic.dimensions import Dimensions, synthetic_id

GENERATOR_PROMPT = """You write realistic test inputs for {product}.
Write the one message a real user with the attributes below would send to its support
assistant: natural wording, in the user's own voice, about this product. Write only the
message: no preamble, no quotation marks, no mention of these attributes or of testing."""


def describe(dimensions: dict[str, str]) -> str:
    """The tuple as the generator and the realism filter read it."""
    return "Attributes of the user and the request:\n" + "\n".join(
        f"- {name}: {value}" for name, value in dimensions.items()
    )


def planned_inputs(
    tuples: Sequence[dict[str, str]], dims: Dimensions, variants: int
) -> pd.DataFrame:
    """synthetic_id, dimensions (JSON), category, variant: one row per tuple and variant,
    in draw order (the first variant of every tuple first)."""
    rows = [
        {
            "synthetic_id": synthetic_id(t, v),
            "dimensions": json.dumps(t),
            "category": t[dims.category],
            "variant": v,
            "tuple_index": i,
        }
        for v in range(variants)
        for i, t in enumerate(tuples)
    ]
    return pd.DataFrame(rows).sort_values(["variant", "tuple_index"], kind="stable")


def generation_calls(planned: pd.DataFrame, dims: Dimensions, model: str) -> list[Call]:
    """One call per planned input; the variant number makes each variant its own prompt (and
    cache key), so a re-run pays for nothing it already generated."""
    system = GENERATOR_PROMPT.format(product=dims.product)
    return [
        Call(
            model,
            [
                {"role": "system", "content": system},
                {
                    "role": "user",
                    "content": describe(json.loads(r.dimensions)) + f"\n\nVariant {r.variant + 1}.",
                },
            ],
            "synthetic:generate",
            {"temperature": 1.0},
        )
        for r in planned.itertuples()
    ]


_PUNCT = re.compile(r"[^\w\s]")
# Long digit runs are identifiers (tickets, orders, phone numbers): two messages that differ
# only in one are the same message.
_IDENTIFIER = re.compile(r"\d{5,}")


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, identifiers (5+ digits) folded, spacing collapsed:
    what makes two texts the same."""
    return " ".join(_PUNCT.sub(" ", _IDENTIFIER.sub(" idnum ", text.lower())).split())


def _vectorizer(corpus: Sequence[str]) -> TfidfVectorizer:
    """Word 1-2 grams, sublinear tf, fitted on the run's whole corpus (every generated input
    and the active pool's inputs): the de-duplication and its check weigh words alike."""
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(corpus)


def closest_pair(texts: Sequence[str], corpus: Sequence[str], others: Sequence[str] = ()) -> float:
    """The highest cosine similarity between two of `texts`, or between one of them and one of
    `others`, under TF-IDF fitted on `corpus` (0 when there is no pair)."""
    if not texts:
        return 0.0
    vec = _vectorizer([normalise(t) for t in [*corpus, *others]] or ["empty"])
    a = vec.transform([normalise(t) for t in texts])
    sims = linear_kernel(a, a)
    np.fill_diagonal(sims, 0.0)
    best = float(sims.max()) if len(texts) > 1 else 0.0
    if others:
        best = max(
            best, float(linear_kernel(a, vec.transform([normalise(t) for t in others])).max())
        )
    return best


def duplicates(
    texts: Sequence[str | None],
    ids: Sequence[str],
    existing: Sequence[str],
    existing_ids: Sequence[str],
    threshold: float,
) -> list[tuple[str | None, float | None, str | None]]:
    """For each of `texts` in order: (status, similarity, what it duplicates) with status
    'duplicate' (the same normalised text as an earlier input or an existing one), or
    'near_duplicate' (TF-IDF cosine over word 1-2 grams >= `threshold`), or None. An input
    is compared with the earlier inputs that were kept and with every existing one (the
    active pool's inputs, `existing_ids` naming them); None texts are skipped. Returns the
    duplicated input's id (`ids` for `texts`)."""
    idx = [i for i, t in enumerate(texts) if t]
    out: list[tuple[str | None, float | None, str | None]] = [(None, None, None)] * len(texts)
    if not idx:
        return out
    corpus = [normalise(texts[i] or "") for i in idx] + [normalise(t) for t in existing]
    vectors = _vectorizer(corpus).transform(corpus)
    sims = linear_kernel(vectors[: len(idx)], vectors)  # rows are L2-normalised: cosine
    n_new = len(idx)
    names = [ids[i] for i in idx] + list(existing_ids)
    seen = {corpus[j]: names[j] for j in range(len(corpus) - 1, n_new - 1, -1)}
    kept: list[int] = []  # positions among idx of the inputs kept so far
    existing_cols = np.arange(n_new, len(corpus))
    for pos, i in enumerate(idx):
        if corpus[pos] in seen:
            out[i] = ("duplicate", 1.0, seen[corpus[pos]])
            continue
        against = np.concatenate([np.array(kept, dtype=int), existing_cols])
        if len(against):
            row = sims[pos, against]
            j = int(np.argmax(row))
            if row[j] >= threshold:
                out[i] = ("near_duplicate", round(float(row[j]), 4), names[int(against[j])])
                continue
        kept.append(pos)
        seen[corpus[pos]] = names[pos]
    return out
