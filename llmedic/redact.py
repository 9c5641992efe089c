"""Keep secrets out of evidence, reports and logs.

Two layers: values of columns a dataset declares ``secret: true`` are masked entirely, and any text
that looks like a credential (API keys, bearer tokens, JWTs, private keys, passwords in URLs or
``key=value`` pairs) is masked wherever llmedic shows sample data.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "SECRET_PATTERNS", "mask", "redact_text"]

MASK = "••••"

SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(?:sk|pk|rk)[-_](?:live|test|proj)?[-_]?[A-Za-z0-9]{16,}\b"),  # OpenAI/Stripe style
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"(?i)(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
    re.compile(r"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*\S+"),
)


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``••••``."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def mask(value: object, secret: bool = False) -> str:
    """A sample value fit to show: fully masked for a secret column, redacted otherwise."""
    if value is None:
        return ""
    if secret:
        return MASK
    return redact_text(str(value))
