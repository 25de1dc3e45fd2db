"""Text features that need no model: content words, stated numbers, confident and refusal
phrasing. Used by the classifier judge (calibration) and by the simulated judges alike."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "as",
        "with",
        "from",
        "your",
        "you",
        "i",
        "me",
        "my",
        "we",
        "our",
        "then",
        "than",
        "what",
        "which",
        "who",
        "can",
        "could",
        "would",
        "should",
        "do",
        "does",
        "did",
        "not",
        "no",
        "yes",
        "t",
        "s",
    ]
)
WORD = re.compile(r"[a-z0-9]+")
NUMBER = re.compile(r"(?<![#\w])\d+(?:\.\d+)?(?![\w])")
CONFIDENT = re.compile(
    r"\b(certainly|definitely|absolutely|i'm confident|fully up to date|guaranteed)\b", re.I
)
REFUSAL = re.compile(
    r"\b(can't|cannot|can not|won't|unable to) (help|share|assist|provide)\b", re.I
)


def content_words(text: str) -> list[str]:
    # "#152" or "ticket #9567487" are references, not content.
    return [w for w in WORD.findall(re.sub(r"#\d+", " ", text.lower())) if w not in STOPWORDS]
