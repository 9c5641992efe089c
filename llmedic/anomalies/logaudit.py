"""Log audit: count the guide's keywords, fold repeated lines into templates, and place each
template's first occurrence against the anomaly's start.

A burst of one repeated error (the same message with other numbers, ids, addresses or paths) shows
as one template with a count, so the one different line that started it is not buried. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["KEYWORDS", "LogAudit", "LogTemplate", "audit_log", "template_of"]

KEYWORDS: dict[str, re.Pattern[str]] = {
    "ERROR": re.compile(r"\bERROR\b"),
    "FATAL": re.compile(r"\b(FATAL|CRITICAL)\b"),
    "OUT_OF_MEMORY": re.compile(
        r"OUT_OF_MEMORY|OutOfMemoryError|CUDA out of memory|\bOOM\b|Killed process", re.I
    ),
    "ConnectionError": re.compile(r"ConnectionError|Connection (refused|reset)|ConnectTimeout|ReadTimeout"),
    "CUDA error": re.compile(r"CUDA error|cudaError|NCCL error|Xid"),
    "Traceback": re.compile(r"^Traceback \(most recent call last\)"),
}

_TS = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\]?\s*")
_VARIABLE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"(?<![\w<])/(?:[\w.-]+/)+[\w.-]*"), "<path>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"(?<![\w<])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w>])", re.I), "<n>"),
]


def template_of(line: str) -> str:
    """The line with its timestamp removed and its variable parts replaced by placeholders."""
    text = _TS.sub("", line.strip())
    for pattern, placeholder in _VARIABLE:
        text = pattern.sub(placeholder, text)
    return text


def _stamp(line: str) -> datetime | None:
    m = _TS.match(line.strip())
    if not m:
        return None
    raw = m.group(1).replace(" ", "T").replace("Z", "+00:00")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class LogTemplate:
    """One kind of line and how often it appeared."""

    template: str
    count: int
    keywords: list[str]
    first_line: int
    example: str
    first_at: datetime | None = None
    relative_seconds: float | None = None
    """First occurrence relative to the anomaly's start (negative: before it)."""


@dataclass
class LogAudit:
    """What a log says."""

    lines: int
    keyword_counts: dict[str, int]
    templates: list[LogTemplate] = field(default_factory=list)
    """Templates of lines with a keyword, most frequent first."""

    def summary(self, top: int = 5) -> str:
        """One line for an evidence summary."""
        counts = ", ".join(f"{k} ×{v}" for k, v in self.keyword_counts.items() if v) or "no error keywords"
        head = "; ".join(f"{t.count}× {t.template[:90]}" for t in self.templates[:top])
        return f"{self.lines} lines: {counts}" + (f"; {head}" if head else "")

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "lines": self.lines,
            "keyword_counts": self.keyword_counts,
            "templates": [
                {
                    **t.__dict__,
                    "first_at": t.first_at.isoformat() if t.first_at else None,
                }
                for t in self.templates
            ],
        }


def audit_log(text: str, *, anomaly_start: datetime | None = None, limit: int = 50) -> LogAudit:
    """Audit ``text``: keyword counts over every line, templates of the lines that carry one."""
    counts = dict.fromkeys(KEYWORDS, 0)
    groups: dict[str, LogTemplate] = {}
    n = 0
    for n, line in enumerate(text.splitlines(), start=1):
        hits = [k for k, p in KEYWORDS.items() if p.search(line.strip() if k == "Traceback" else line)]
        if not hits:
            continue
        for k in hits:
            counts[k] += 1
        key = template_of(line)
        if key in groups:
            groups[key].count += 1
            continue
        at = _stamp(line)
        rel = (at - anomaly_start).total_seconds() if at and anomaly_start else None
        groups[key] = LogTemplate(key, 1, hits, n, line.strip()[:300], at, rel)
    templates = sorted(groups.values(), key=lambda t: (-t.count, t.first_line))[:limit]
    return LogAudit(lines=n, keyword_counts=counts, templates=templates)
