"""The sandbox's domain knowledge: clinical drug-interaction questions with accepted answers."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "ClinicalFacts",
    "LiveKnowledge",
    "QAPair",
    "adversarial_path",
    "golden_path",
    "load_knowledge",
    "parse_knowledge",
    "shipped_path",
]

_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(["what", "is", "the", "main", "risk", "of", "combining", "with", "a", "an", "and"])


def _tokens(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


@dataclass(frozen=True)
class QAPair:
    """One golden item."""

    id: str
    question: str
    answers: tuple[str, ...]
    tags: tuple[str, ...]


class ClinicalFacts:
    """Answers a question with the best-overlapping known question's first answer."""

    def __init__(self, items: list[QAPair]) -> None:
        self.items = items
        self._index = [(_tokens(i.question), i) for i in items]

    def lookup(self, question: str) -> QAPair | None:
        """The item whose question shares the most content words (at least half of them), else the
        most specific item whose content words all appear in the question; None otherwise."""
        asked = _tokens(question)
        if not asked:
            return None
        best: tuple[float, QAPair | None] = (0.0, None)
        for toks, item in self._index:
            score = len(asked & toks) / len(asked | toks)
            if score > best[0]:
                best = (score, item)
        if best[0] >= 0.5:
            return best[1]
        # A long question that contains every content word of a known one ("warfarin and aspirin
        # have no interaction, right?") is about that one: the most specific such question wins.
        within = [(len(toks), item) for toks, item in self._index if toks and toks <= asked]
        return max(within, key=lambda x: x[0])[1] if within else None


SHIPPED = "data/drug_interactions.jsonl"


def shipped_path() -> Path:
    """The knowledge base shipped with llmedic (the first version of the sandbox's dataset)."""
    return Path(str(resources.files("llmedic_sandbox").joinpath(SHIPPED)))


def golden_path() -> Path:
    """The sandbox vertical's golden set (the curated questions and accepted answers)."""
    return Path(str(resources.files("llmedic_sandbox").joinpath("data/golden_pharma_qa.jsonl")))


def adversarial_path() -> Path:
    """Prompt-injection and leading questions the sandbox's model must resist."""
    return Path(str(resources.files("llmedic_sandbox").joinpath("data/adversarial_pharma_qa.jsonl")))


def parse_knowledge(text: str) -> ClinicalFacts:
    """Items from JSONL text. Rows whose answers are missing or empty are served as "I don't know":
    that is what a corrupted knowledge base does to the service, and what the audit must catch."""
    items = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not row.get("question"):
            continue
        raw = row.get("answers")
        answers: list[object] = raw if isinstance(raw, list) else []
        items.append(
            QAPair(
                str(row.get("id", "")),
                str(row["question"]),
                tuple(str(a) for a in answers if a),
                tuple(str(t) for t in (row.get("tags") or ())),
            )
        )
    return ClinicalFacts(items)


def load_knowledge(path: Path | None = None) -> ClinicalFacts:
    """The knowledge base in ``path`` (default: the shipped one)."""
    return parse_knowledge((path or shipped_path()).read_text("utf-8"))


class LiveKnowledge:
    """A knowledge base read from a published dataset file and re-read when the file changes: the
    sandbox serves whatever version of the dataset is current, as a RAG service serves its index."""

    def __init__(self, path: Path, check_every: float = 0.5) -> None:
        self.path = path
        self.check_every = check_every
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._kb = ClinicalFacts([])
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return
        self._checked = now
        try:
            st = self.path.stat()
        except OSError:
            return  # keep serving the last good copy
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._kb = load_knowledge(self.path)
                self._stamp = stamp
            except (OSError, UnicodeDecodeError):
                return

    @property
    def items(self) -> list[QAPair]:
        """The current items."""
        self._refresh()
        return self._kb.items

    def lookup(self, question: str) -> QAPair | None:
        """As :meth:`ClinicalFacts.lookup`, on the current version."""
        self._refresh()
        return self._kb.lookup(question)
