"""Scoring an answer against a golden item's accepted answers.

Scoring follows the official SQuAD evaluation: answers are normalised (lower case, punctuation and
the articles a/an/the removed, whitespace collapsed); exact match is 1 when the normalised prediction
equals a normalised accepted answer; token F1 is the harmonic mean of precision and recall over the
shared tokens; with several accepted answers the best counts. A pluggable semantic scorer defaults
to a lexical TF-IDF cosine (no model download at run time).

Used by the golden-set runner (``llmedic.golden``) for every consumer of golden scores: the
accuracy-drop home, the golden sample and the release gate. Pure: NumPy, no I/O.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["SemanticScorer", "TfidfScorer", "exact_match", "normalize_answer", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, answers: Sequence[str]) -> int:
    """1 when the normalised prediction equals a normalised accepted answer."""
    pred = normalize_answer(prediction)
    return int(any(pred == normalize_answer(a) for a in answers))


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 over the accepted answers."""
    return max((_f1(prediction, a) for a in answers), default=0.0)


class SemanticScorer(Protocol):
    """Scores how close a prediction is to the accepted answers (1 = the same meaning)."""

    def score(self, prediction: str, answers: Sequence[str]) -> float:
        """Similarity in [0, 1]."""
        ...


class TfidfScorer:
    """Cosine similarity of TF-IDF vectors over a vocabulary built from the golden set (lexical: it
    stands in for an embedding model, which cannot be downloaded at run time here)."""

    def __init__(self, corpus: Sequence[str]) -> None:
        docs = [normalize_answer(d).split() for d in corpus]
        vocab = sorted({w for d in docs for w in d})
        self.index = {w: i for i, w in enumerate(vocab)}
        df = np.zeros(len(vocab))
        for d in docs:
            for w in set(d):
                df[self.index[w]] += 1
        self.idf = np.log((1 + len(docs)) / (1 + df)) + 1  # smoothed, as scikit-learn does

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(len(self.index))
        for w, n in Counter(normalize_answer(text).split()).items():
            i = self.index.get(w)
            if i is not None:
                v[i] = n * self.idf[i]
        return v

    def score(self, prediction: str, answers: Sequence[str]) -> float:
        """The best cosine over the accepted answers (0 when a side has no known word)."""
        p = self._vec(prediction)
        best = 0.0
        for a in answers:
            g = self._vec(a)
            denom = float(np.linalg.norm(p) * np.linalg.norm(g))
            if denom > 0:
                best = max(best, float(p @ g) / denom)
        return best
