"""PII and secret redaction before any text leaves for a provider (judge, candidate model,
taxonomy suggester). `run_calls` passes every message of every call through `redact`, so no
caller can forget it; callers that build prompts redact too, only to count what they hid.

Maintained detectors where they exist: credentials by detect-secrets' token-format plugins
(AWS, GitHub, GitLab, Slack, Stripe, OpenAI, JWTs, private keys, ...) plus current provider
key formats those plugins predate (`sk-proj-...`, `sk-ant-...`, `hf_...`, `AIza...`); phone
numbers by Google's libphonenumber (`phonenumbers`: international numbers, and national
numbers of `PHONE_REGION` with or without separators); IBANs and card numbers checked by
python-stdnum (mod-97, Luhn), so order numbers are left alone. E-mail and IP addresses are
plain patterns. Each match becomes a typed placeholder (`[SECRET]`, `[EMAIL]`, `[PHONE]`,
`[CARD]`, `[IBAN]`, `[IP]`) and is counted, so metadata can say what was redacted.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import Any

# National phone numbers written without a country code are read as numbers of this region.
PHONE_REGION = "US"
# Credential formats detect-secrets 1.5 does not know yet (current provider key shapes).
PROVIDER_KEYS = re.compile(
    r"\b(?:sk|rk|pk)-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-|live_|test_)?[A-Za-z0-9_-]{20,}"
    r"|\bhf_[A-Za-z0-9]{30,}|\bAIza[0-9A-Za-z_-]{35}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"
)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# detect-secrets plugins that recognise a credential by its format. The entropy and keyword
# plugins are left out: they flag ordinary ids and prose.
SECRET_PLUGINS = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)


@cache
def _secret_plugins() -> tuple[Any, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    by_name = {c.__name__: c for c in get_mapping_from_secret_type_to_class().values()}
    return tuple(by_name[name]() for name in SECRET_PLUGINS)


EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
IPV6 = re.compile(
    r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b|\b(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?"
)
# Used by the Layer-1 `no_pii_in_output` assertion, which runs in SQL; redaction itself uses
# libphonenumber. International or national formats with 9-15 digits (E.164).
PHONE = re.compile(
    r"(?<![\w#+])(?<!\d[\s.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])(?:\d{2,4}[\s.-]){0,3}\d{3,4}(?![\w]|[\s.-]\d)"
)


# A whole PEM private key: detect-secrets' PrivateKeyDetector matches only its header line.
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END[A-Z ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.S,
)


def _secrets(text: str) -> list[str]:
    found = {m.group(0) for m in PROVIDER_KEYS.finditer(text)}
    found.update(m.group(0) for m in PEM_PRIVATE_KEY.finditer(text))
    for plugin in _secret_plugins():
        # The whole match of each pattern, not what the plugin reports: some patterns capture
        # only a token's prefix (GitHub's `ghp`, GitLab's `glpat`), and replacing that alone
        # would send the rest of the token on. (JWTs are then redacted without validation.)
        for regex in plugin.denylist:
            found.update(m.group(0) for m in regex.finditer(text))
    return sorted(found, key=len, reverse=True)  # longest first: no partial replacements


# Where a phone number can be: 8+ digits in a run, with the separators people write.
PHONE_CANDIDATE = re.compile(r"\+?\(?\d(?:[\s().-]{0,2}\d){7,16}")


def _phones(text: str) -> list[str]:
    # libphonenumber is thorough and slow on long text: it reads only the digit runs.
    import phonenumbers

    found = []
    for candidate in PHONE_CANDIDATE.finditer(text):
        matcher = phonenumbers.PhoneNumberMatcher(candidate.group(0), PHONE_REGION)
        found += [m.raw_string for m in matcher]
    return found


def redact(text: str | None, counts: Counter[str] | None = None) -> str | None:
    """`text` with PII and secrets replaced by placeholders; adds what it replaced to
    `counts`. Idempotent: redacting a redacted text changes nothing."""
    if not text:
        return text
    counts = counts if counts is not None else Counter()
    from stdnum import iban, luhn

    def sub(pattern: re.Pattern[str], label: str, s: str, check: object = None) -> str:
        def repl(m: re.Match[str]) -> str:
            if check is not None and not check(m.group(0)):  # type: ignore[operator]
                return m.group(0)
            counts[label.lower()] += 1
            return f"[{label}]"

        return pattern.sub(repl, s)

    def replace_all(found: list[str], label: str, s: str) -> str:
        for value in found:
            n = s.count(value)
            if n:
                counts[label.lower()] += n
                s = s.replace(value, f"[{label}]")
        return s

    text = replace_all(_secrets(text), "SECRET", text)
    text = sub(EMAIL, "EMAIL", text)
    text = sub(IBAN, "IBAN", text, lambda s: iban.is_valid(s))
    text = sub(CARD, "CARD", text, lambda s: luhn.is_valid(re.sub(r"\D", "", s)))
    text = sub(IPV6, "IP", text, lambda s: s.count(":") >= 2)
    text = sub(IPV4, "IP", text)
    text = replace_all(_phones(text), "PHONE", text)
    return text


def redacted_case(row: dict[str, object], pii: Counter[str]) -> dict[str, str | None]:
    """The case fields a judge or a candidate model sees (input and references), redacted."""
    return {k: redact(row.get(k), pii) for k in ("input", "reference_good", "reference_borderline")}  # type: ignore[arg-type]
