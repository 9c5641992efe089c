"""Golden sets: every malformed file is refused with the line at fault; scoring against the real
sandbox counts failed requests apart from wrong answers; adversarial prompts catch a jailbroken model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from llmedic.adapters.endpoint import Endpoint
from llmedic.errors import EndpointError, GoldenSetError
from llmedic.golden import (
    GoldenItem,
    check_adversarial,
    load_adversarial,
    load_golden,
    sample_items,
    score_items,
)
from llmedic_sandbox.knowledge import adversarial_path, golden_path
from tests.conftest import Fleet

GOOD = '{"id": "a", "question": "q?", "answers": ["x"], "tags": ["t"]}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "golden set {p} does not exist"),
        ("", "golden set {p} has no items"),
        ("\n\n", "golden set {p} has no items"),
        (
            GOOD + "{not json\n",
            "{p}:2: not JSON (Expecting property name enclosed in double quotes at column 2)",
        ),
        ('["a list"]\n', "{p}:1: a line must be a JSON object, not list"),
        ('{"id": "a", "answers": ["x"]}\n', "{p}:1: 'question' is missing or empty"),
        ('{"id": "a", "question": "q?"}\n', "{p}:1: 'answers' must be a list of non-empty strings, got None"),
        ('{"id": "a", "question": "q?", "answers": []}\n', "{p}:1: 'answers' is empty"),
        (
            '{"id": "a", "question": "q?", "answers": "x"}\n',
            "{p}:1: 'answers' must be a list of non-empty strings, got 'x'",
        ),
        (
            '{"id": "a", "question": "q?", "answers": ["x"], "tags": "t"}\n',
            "{p}:1: 'tags' must be a list of non-empty strings, got 't'",
        ),
        (GOOD + GOOD, "{p}: item id 'a' is used twice"),
    ],
)
def test_bad_golden_sets_are_refused_with_the_line(tmp_path: Path, text: str | None, message: str) -> None:
    p = tmp_path / "golden.jsonl"
    if text is not None:
        p.write_text(text)
    with pytest.raises(GoldenSetError) as err:
        load_golden(p)
    assert err.value.message == message.format(p=p)


def test_latin1_golden_set_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "golden.jsonl"
    p.write_bytes('{"id": "a", "question": "Adélie?", "answers": ["x"]}\n'.encode("latin-1"))
    with pytest.raises(GoldenSetError, match="cannot be read: 'utf-8' codec can't decode"):
        load_golden(p)


def test_adversarial_item_must_check_something(tmp_path: Path) -> None:
    p = tmp_path / "adv.jsonl"
    p.write_text('{"id": "x", "prompt": "hi"}\n')
    with pytest.raises(GoldenSetError) as err:
        load_adversarial(p)
    assert err.value.message == f"{p}:1: item 'x' checks nothing"


def test_shipped_sets_load() -> None:
    items = load_golden(golden_path())
    assert len(items) == 100 and len({i.id for i in items}) == 100
    assert len(load_adversarial(adversarial_path())) == 8


def test_sample_is_stratified_by_first_tag_and_reproducible() -> None:
    items = load_golden(golden_path())
    a = sample_items(items, 40, seed="day-1")
    assert len(a) == 40 and a == sample_items(items, 40, seed="day-1")
    assert a != sample_items(items, 40, seed="day-2")
    full = Counter(i.tags[0] for i in items)
    got = Counter(i.tags[0] for i in a)
    assert all(abs(got[t] - 40 * n / 100) < 1 for t, n in full.items())
    assert sample_items(items, None) == items


def _eps(fleet: Fleet, names: list[str]) -> dict[str, Endpoint]:
    return {n: Endpoint(fleet.urls[n], timeout=10) for n in names}


def test_scoring_the_healthy_sandbox_gets_everything_right(sandbox: Fleet) -> None:
    items = load_golden(golden_path())
    card = score_items(items, _eps(sandbox, ["sandbox-0", "sandbox-1"]), concurrency=8)
    assert (card.accuracy, card.errors, len(card.scored)) == (1.0, 0, 100)
    assert Counter(i.instance for i in card.items) == {"sandbox-0": 50, "sandbox-1": 50}
    assert card.by_tag()["anticoagulant"][0] == card.by_tag()["anticoagulant"][1]


def test_failed_requests_are_errors_not_wrong_answers(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {"kind": "errors", "rate": 1.0})
    items = load_golden(golden_path())[:20]
    eps = _eps(sandbox, ["sandbox-0", "sandbox-1"])
    card = score_items(items, eps, max_error_share=0.5)
    assert (card.errors, len(card.scored), card.accuracy) == (10, 10, 1.0)
    with pytest.raises(EndpointError) as err:
        score_items(items, eps, max_error_share=0.2)
    assert err.value.message == (
        "10 of 20 golden requests failed (HTTP 500 ×10); accuracy cannot be judged while the service errors"
    )


def test_a_jailbroken_model_fails_the_adversarial_set(sandbox: Fleet) -> None:
    items = load_adversarial(adversarial_path())
    ep = Endpoint(sandbox.urls["sandbox-3"], timeout=10)
    assert [r.id for r in check_adversarial(items, ep) if not r.passed] == []
    sandbox.admin("sandbox-3", "faults", {"kind": "jailbreak", "model_version": "pharma-qa-2.0-rc1"})
    assert [r.id for r in check_adversarial(items, ep) if not r.passed] == []  # dormant: other version
    sandbox.admin("sandbox-3", "model", {"version": "pharma-qa-2.0-rc1"})
    failed = {r.id: r.reason for r in check_adversarial(items, ep) if not r.passed}
    assert sorted(failed) == [f"adv-00{i}" for i in range(1, 9)]
    assert failed["adv-001"] == "said 'system prompt is'"


def test_llmedic_probes_are_not_logged_as_user_prompts(sandbox: Fleet) -> None:
    item = GoldenItem("x", "What is the main risk of combining warfarin with zzzprobe?", ("a",))
    score_items([item], _eps(sandbox, ["sandbox-2"]))
    sandbox.admin("sandbox-2", "drain")  # no background traffic: only the two requests below
    httpx.post(
        f"{sandbox.urls['sandbox-2']}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a user question"}]},
        timeout=10,
    )
    logged = httpx.get(f"{sandbox.urls['sandbox-2']}/admin/prompts", timeout=10).json()["prompts"]
    assert [p["prompt"] for p in logged][-1:] == ["a user question"]
    assert not any("zzzprobe" in p["prompt"] for p in logged)
