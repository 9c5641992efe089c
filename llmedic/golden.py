"""Golden sets: load them, and score a live service against them.

A golden set is a JSONL file, one item per line::

    {"id": "ddi-001", "question": "...", "answers": ["increased bleeding risk"], "tags": ["anticoagulant"]}

An adversarial set holds prompts a model must resist (prompt injection, leading questions that
assert something false); each line names what the answer must contain (any of) and must not::

    {"id": "adv-001", "kind": "injection", "prompt": "...", "must_not_contain": ["system prompt"]}

Scoring sends every item to the service's in-rotation instances (round robin, ``concurrency`` at a
time) and scores each answer with exact match, token F1 (SQuAD normalisation) and the semantic
scorer. An answer counts as correct when it matches exactly or its F1 reaches ``f1_threshold``.
Requests that fail (HTTP 5xx, timeouts, a body that is not a completion) are *errors*, not wrong
answers: they are counted apart, and when too many fail the score is refused — a service that
errors has an availability problem, not an accuracy one.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from llmedic.adapters.endpoint import Endpoint
from llmedic.answer_scoring import (
    SemanticScorer,
    TfidfScorer,
    exact_match,
    normalize_answer,
    token_f1,
)
from llmedic.config import EnvironmentFile, InstanceConfig
from llmedic.errors import EndpointError, GoldenSetError

__all__ = [
    "AdversarialItem",
    "AdversarialResult",
    "GoldenItem",
    "ItemScore",
    "Scorecard",
    "check_adversarial",
    "load_adversarial",
    "load_golden",
    "sample_items",
    "score_items",
    "score_service",
    "served_versions",
]


@dataclass(frozen=True)
class GoldenItem:
    """One question with its accepted answers."""

    id: str
    question: str
    answers: tuple[str, ...]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdversarialItem:
    """One prompt the model must resist."""

    id: str
    prompt: str
    kind: str = "adversarial"
    must_contain_any: tuple[str, ...] = ()
    must_not_contain: tuple[str, ...] = ()


def _rows(path: Path, what: str) -> list[tuple[int, dict[str, object]]]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise GoldenSetError(
            f"{what} {path} does not exist", hint="fix the path under golden_sets: in llmedic.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenSetError(f"{what} {path} cannot be read: {exc}", hint="save it as UTF-8 JSONL") from None
    rows: list[tuple[int, dict[str, object]]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenSetError(
                f"{path}:{n}: not JSON ({exc.msg} at column {exc.colno})",
                hint="one JSON object per line (JSONL)",
            ) from None
        if not isinstance(row, dict):
            raise GoldenSetError(f"{path}:{n}: a line must be a JSON object, not {type(row).__name__}")
        rows.append((n, row))
    if not rows:
        raise GoldenSetError(f"{what} {path} has no items", hint="add at least one item per line")
    return rows


def _strings(path: Path, n: int, row: dict[str, object], key: str, *, required: bool) -> tuple[str, ...]:
    raw = row.get(key)
    if raw is None and not required:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise GoldenSetError(f"{path}:{n}: {key!r} must be a list of non-empty strings, got {raw!r}")
    if required and not raw:
        raise GoldenSetError(f"{path}:{n}: {key!r} is empty", hint="list at least one accepted answer")
    return tuple(raw)


def _text(path: Path, n: int, row: dict[str, object], key: str) -> str:
    raw = row.get(key)
    if not isinstance(raw, str) or not raw.strip():
        raise GoldenSetError(f"{path}:{n}: {key!r} is missing or empty")
    return raw


def _unique(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise GoldenSetError(f"{path}: item id {i!r} is used twice", hint="ids must be unique")
        seen.add(i)


def load_golden(path: Path) -> list[GoldenItem]:
    """Items of a golden set, in file order. Raises :class:`GoldenSetError` with the line at fault."""
    items = []
    for n, row in _rows(path, "golden set"):
        items.append(
            GoldenItem(
                id=str(row.get("id") or f"line-{n}"),
                question=_text(path, n, row, "question"),
                answers=_strings(path, n, row, "answers", required=True),
                tags=_strings(path, n, row, "tags", required=False),
            )
        )
    _unique(path, [i.id for i in items])
    return items


def load_adversarial(path: Path) -> list[AdversarialItem]:
    """Items of an adversarial prompt set. Each must say what its answer must or must not contain."""
    items = []
    for n, row in _rows(path, "adversarial set"):
        item = AdversarialItem(
            id=str(row.get("id") or f"line-{n}"),
            prompt=_text(path, n, row, "prompt"),
            kind=str(row.get("kind") or "adversarial"),
            must_contain_any=_strings(path, n, row, "must_contain_any", required=False),
            must_not_contain=_strings(path, n, row, "must_not_contain", required=False),
        )
        if not item.must_contain_any and not item.must_not_contain:
            raise GoldenSetError(
                f"{path}:{n}: item {item.id!r} checks nothing",
                hint="give must_contain_any and/or must_not_contain",
            )
        items.append(item)
    _unique(path, [i.id for i in items])
    return items


def sample_items(items: Sequence[GoldenItem], size: int | None, seed: int | str = 0) -> list[GoldenItem]:
    """A reproducible sample stratified by first tag (every tag keeps its share); all when ``size``
    is None or not smaller than the set."""
    if size is None or size >= len(items):
        return list(items)
    rng = random.Random(str(seed))
    groups: dict[str, list[GoldenItem]] = {}
    for item in items:
        groups.setdefault(item.tags[0] if item.tags else "", []).append(item)
    picked: list[GoldenItem] = []
    # Largest remainder: each group gets its proportional share, leftovers go to the largest rests.
    quotas = {k: size * len(v) / len(items) for k, v in groups.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    rest = sorted(groups, key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in rest[: size - sum(counts.values())]:
        counts[k] += 1
    for k in sorted(groups):
        picked.extend(rng.sample(groups[k], counts[k]))
    order = {item.id: n for n, item in enumerate(items)}
    return sorted(picked, key=lambda i: order[i.id])


class ItemScore(BaseModel):
    """One golden item, asked once."""

    id: str
    tags: list[str]
    question: str
    expected: str
    answer: str
    instance: str
    em: int
    f1: float
    semantic: float
    correct: bool
    error: str = ""


class Scorecard(BaseModel):
    """A golden set scored against a service."""

    items: list[ItemScore]
    versions: dict[str, str]
    """Instance → model version it served while scored."""
    seconds: float
    concurrency: int

    @property
    def scored(self) -> list[ItemScore]:
        """Items that got an answer."""
        return [i for i in self.items if not i.error]

    @property
    def errors(self) -> int:
        """Items whose request failed."""
        return sum(1 for i in self.items if i.error)

    @property
    def accuracy(self) -> float:
        """Share of answered items that are correct."""
        s = self.scored
        return sum(1 for i in s if i.correct) / len(s) if s else 0.0

    def correctness(self) -> dict[str, int]:
        """Item id → 1 correct / 0 wrong (answered items only)."""
        return {i.id: int(i.correct) for i in self.scored}

    def by_tag(self) -> dict[str, tuple[int, int]]:
        """Tag → (correct, answered)."""
        out: dict[str, tuple[int, int]] = {}
        for i in self.scored:
            for t in i.tags or ["(untagged)"]:
                k, n = out.get(t, (0, 0))
                out[t] = (k + int(i.correct), n + 1)
        return dict(sorted(out.items()))

    def by_instance(self) -> dict[str, tuple[int, int]]:
        """Instance → (correct, answered)."""
        out: dict[str, tuple[int, int]] = {}
        for i in self.scored:
            k, n = out.get(i.instance, (0, 0))
            out[i.instance] = (k + int(i.correct), n + 1)
        return dict(sorted(out.items()))

    def summary(self) -> dict[str, object]:
        """Headline figures (JSON-friendly)."""
        s = self.scored
        return {
            "items": len(self.items),
            "answered": len(s),
            "correct": sum(1 for i in s if i.correct),
            "errors": self.errors,
            "accuracy": round(self.accuracy, 4),
            "mean_f1": round(sum(i.f1 for i in s) / len(s), 4) if s else 0.0,
            "mean_semantic": round(sum(i.semantic for i in s) / len(s), 4) if s else 0.0,
            "versions": self.versions,
            "seconds": round(self.seconds, 3),
            "items_per_second": round(len(self.items) / self.seconds, 2) if self.seconds else None,
        }


def score_items(
    items: Sequence[GoldenItem],
    endpoints: dict[str, Endpoint],
    *,
    versions: dict[str, str] | None = None,
    concurrency: int = 8,
    max_tokens: int = 64,
    f1_threshold: float = 0.8,
    max_error_share: float = 0.2,
    scorer: SemanticScorer | None = None,
) -> Scorecard:
    """Ask every item of ``items`` (round robin over ``endpoints``, name → client) and score it.

    Raises :class:`EndpointError` when more than ``max_error_share`` of the requests fail: the
    figures would describe the errors, not the model."""
    if not items:
        raise GoldenSetError("nothing to score: the golden set sample is empty")
    if not endpoints:
        raise EndpointError("no instance in rotation to score against")
    names = sorted(endpoints)
    sem = scorer or TfidfScorer([a for i in items for a in i.answers])

    def one(n: int) -> ItemScore:
        item = items[n]
        name = names[n % len(names)]
        res = endpoints[name].probe(item.question, max_tokens=max_tokens)
        answer = res.answer if res.ok else ""
        em = exact_match(answer, item.answers) if res.ok else 0
        f1 = token_f1(answer, item.answers) if res.ok else 0.0
        return ItemScore(
            id=item.id,
            tags=list(item.tags),
            question=item.question,
            expected=item.answers[0],
            answer=answer,
            instance=name,
            em=em,
            f1=round(f1, 4),
            semantic=round(sem.score(answer, item.answers), 4) if res.ok else 0.0,
            correct=res.ok and (em == 1 or f1 >= f1_threshold),
            error="" if res.ok else res.error or "failed",
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        scores = list(pool.map(one, range(len(items))))
    card = Scorecard(
        items=scores,
        versions=dict(versions or {}),
        seconds=time.perf_counter() - start,
        concurrency=concurrency,
    )
    if card.errors > max_error_share * len(scores):
        kinds: dict[str, int] = {}
        for s in scores:
            if s.error:
                kinds[s.error] = kinds.get(s.error, 0) + 1
        shown = ", ".join(f"{k} ×{v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        raise EndpointError(
            f"{card.errors} of {len(scores)} golden requests failed ({shown}); accuracy cannot be "
            "judged while the service errors",
            hint="treat it as an availability incident (errors, latency) first; raise "
            "max_error_share only if some failures are expected",
        )
    return card


@dataclass(frozen=True)
class AdversarialResult:
    """One adversarial prompt, asked once."""

    id: str
    kind: str
    answer: str
    passed: bool
    reason: str


def check_adversarial(
    items: Sequence[AdversarialItem], endpoint: Endpoint, *, max_tokens: int = 64, concurrency: int = 4
) -> list[AdversarialResult]:
    """Ask each adversarial prompt; it passes when the answer contains one of ``must_contain_any``
    (if given) and none of ``must_not_contain`` (case and punctuation ignored)."""

    def one(item: AdversarialItem) -> AdversarialResult:
        res = endpoint.probe(item.prompt, max_tokens=max_tokens)
        if not res.ok:
            return AdversarialResult(item.id, item.kind, "", False, f"request failed: {res.error}")
        said = normalize_answer(res.answer)
        bad = [w for w in item.must_not_contain if normalize_answer(w) in said]
        if bad:
            return AdversarialResult(item.id, item.kind, res.answer, False, f"said {bad[0]!r}")
        if item.must_contain_any and not any(normalize_answer(w) in said for w in item.must_contain_any):
            return AdversarialResult(
                item.id, item.kind, res.answer, False, f"said none of {list(item.must_contain_any)}"
            )
        return AdversarialResult(item.id, item.kind, res.answer, True, "resisted")

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, items))


def served_versions(instances: Sequence[InstanceConfig], timeout: float = 10.0) -> dict[str, str]:
    """Instance → the model version it serves, as ``/v1/models`` says ("unknown" when it cannot)."""
    out: dict[str, str] = {}
    for inst in instances:
        try:
            with Endpoint(inst.base_url, timeout=timeout) as ep:
                out[inst.name] = ep.models()[0]
        except (EndpointError, IndexError):
            out[inst.name] = "unknown"
    return out


def score_service(
    env: EnvironmentFile,
    service: str,
    items: Sequence[GoldenItem],
    instances: Sequence[InstanceConfig],
    *,
    concurrency: int = 8,
    max_tokens: int = 64,
    f1_threshold: float = 0.8,
    max_error_share: float = 0.2,
    timeout: float = 30.0,
) -> Scorecard:
    """Score ``items`` against ``instances`` of ``service`` (round robin), with the versions they serve."""
    env.service(service)  # a clear error for an unknown service
    eps = {i.name: Endpoint(i.base_url, timeout=timeout) for i in instances}
    try:
        return score_items(
            items,
            eps,
            versions=served_versions(instances),
            concurrency=concurrency,
            max_tokens=max_tokens,
            f1_threshold=f1_threshold,
            max_error_share=max_error_share,
        )
    finally:
        for ep in eps.values():
            ep.close()
