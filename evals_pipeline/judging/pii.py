"""PII redaction before any text leaves for a judge or a candidate model.

Regexes for e-mail addresses, phone numbers, payment-card numbers (Luhn-checked, so order
numbers are left alone) and IPv4/IPv6 addresses; each match becomes a typed placeholder
(`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IP]`) and is counted, so metadata can say what was redacted.
"""

from __future__ import annotations

import re
from collections import Counter

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
IPV6 = re.compile(
    r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b|\b(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?"
)
# International or national formats with 9-15 digits (E.164), e.g. +44 20 7946 0958, (415) 555-0134.
PHONE = re.compile(
    r"(?<![\w#+])(?<!\d[\s.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])(?:\d{2,4}[\s.-]){0,3}\d{3,4}(?![\w]|[\s.-]\d)"
)


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def redact(text: str | None, counts: Counter[str] | None = None) -> str | None:
    """`text` with PII replaced by placeholders; adds what it replaced to `counts`."""
    if not text:
        return text
    counts = counts if counts is not None else Counter()

    def sub(pattern: re.Pattern[str], label: str, s: str, check: object = None) -> str:
        def repl(m: re.Match[str]) -> str:
            if check is not None and not check(m.group(0)):  # type: ignore[operator]
                return m.group(0)
            counts[label.lower()] += 1
            return f"[{label}]"

        return pattern.sub(repl, s)

    text = sub(EMAIL, "EMAIL", text)
    text = sub(CARD, "CARD", text, lambda s: _luhn(re.sub(r"\D", "", s)))
    text = sub(IPV6, "IP", text, lambda s: s.count(":") >= 2)
    text = sub(IPV4, "IP", text)
    text = sub(PHONE, "PHONE", text, lambda s: 9 <= len(re.sub(r"\D", "", s)) <= 15)
    return text


def redacted_case(row: dict[str, object], pii: Counter[str]) -> dict[str, str | None]:
    """The case fields a judge or a candidate model sees (input and references), redacted."""
    return {k: redact(row.get(k), pii) for k in ("input", "reference_good", "reference_borderline")}  # type: ignore[arg-type]
