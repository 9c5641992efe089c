"""The sandbox's domain knowledge: clinical drug-interaction questions with accepted answers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["KnowledgeBase", "QAPair", "load_knowledge"]

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


class KnowledgeBase:
    """Answers a question with the best-overlapping known question's first answer."""

    def __init__(self, items: list[QAPair]) -> None:
        self.items = items
        self._index = [(_tokens(i.question), i) for i in items]

    def lookup(self, question: str) -> QAPair | None:
        """The item whose question shares the most content words (None below half overlap)."""
        asked = _tokens(question)
        if not asked:
            return None
        best: tuple[float, QAPair | None] = (0.0, None)
        for toks, item in self._index:
            score = len(asked & toks) / len(asked | toks)
            if score > best[0]:
                best = (score, item)
        return best[1] if best[0] >= 0.5 else None


def load_knowledge() -> KnowledgeBase:
    """The shipped knowledge base (``sandbox/data/drug_interactions.jsonl``)."""
    text = resources.files("llmedic.sandbox").joinpath("data/drug_interactions.jsonl").read_text("utf-8")
    items = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            items.append(QAPair(row["id"], row["question"], tuple(row["answers"]), tuple(row["tags"])))
    return KnowledgeBase(items)
