"""Golden-set scoring (SQuAD rules) and the tests that decide an accuracy drop, on known answers."""

from __future__ import annotations

import math

import pytest

from llmedic.anomalies.accuracy.stats import (
    compare_runs,
    mcnemar,
    paired_bootstrap,
    power_warning,
    required_items,
    two_proportion_z,
    wilson_interval,
)
from llmedic.answer_scoring import TfidfScorer, exact_match, normalize_answer, token_f1


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Increased bleeding risk.", "increased bleeding risk"),
        ("  an  INR   rise! ", "inr rise"),
        ("a", ""),
        ("Serotonin syndrome (rare)", "serotonin syndrome rare"),
    ],
)
def test_squad_normalisation(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


@pytest.mark.parametrize(
    ("prediction", "answers", "em", "f1"),
    [
        ("Increased bleeding risk.", ["increased bleeding risk"], 1, 1.0),
        ("bleeding risk", ["increased bleeding risk"], 0, 0.8),  # P 2/2, R 2/3
        ("hypoglycaemia", ["increased bleeding risk", "hypoglycaemia"], 1, 1.0),
        ("I don't know.", ["increased bleeding risk"], 0, 0.0),
        ("", ["the"], 1, 1.0),  # both normalise to empty: SQuAD counts that as a match
    ],
)
def test_exact_match_and_token_f1(prediction: str, answers: list[str], em: int, f1: float) -> None:
    assert exact_match(prediction, answers) == em
    assert token_f1(prediction, answers) == pytest.approx(f1)


def test_tfidf_scorer_ranks_meaning_by_shared_rare_words() -> None:
    scorer = TfidfScorer(["increased bleeding risk", "serotonin syndrome", "hypoglycaemia risk"])
    same = scorer.score("risk of increased bleeding", ["increased bleeding risk"])
    near = scorer.score("bleeding", ["increased bleeding risk"])
    other = scorer.score("serotonin syndrome", ["increased bleeding risk"])
    assert same == pytest.approx(1.0) and 0 < near < same and other == 0.0


@pytest.mark.parametrize(
    ("p1", "p2", "n"),
    # domain-facts §6: per arm, one-sided α = 0.05, power 0.8
    [(0.90, 0.85, 268), (0.90, 0.87, 697), (0.80, 0.75, 431), (0.80, 0.77, 1159), (0.95, 0.92, 413)],
)
def test_required_items_match_the_published_sample_sizes(p1: float, p2: float, n: int) -> None:
    assert required_items(p1, p2) == n


def test_power_warning() -> None:
    assert power_warning(1000, 0.9, 0.05) is None
    warning = power_warning(100, 0.9, 0.05)
    assert warning is not None and warning.startswith(
        "100 golden items cannot reliably detect a drop of 5% from 90%"
    )


@pytest.mark.parametrize(("n", "half"), [(100, 0.078), (500, 0.035), (1000, 0.025)])
def test_wilson_half_width_at_80_percent(n: int, half: float) -> None:
    lo, hi = wilson_interval(round(0.8 * n), n)
    assert (hi - lo) / 2 == pytest.approx(half, abs=0.0015)


def test_two_proportion_z_is_one_sided_for_a_drop() -> None:
    z, p = two_proportion_z(90, 100, 75, 100)
    assert z > 0 and p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    assert p < 0.01
    assert two_proportion_z(75, 100, 90, 100)[1] > 0.99  # an improvement is no drop


def test_mcnemar_exact_and_asymptotic() -> None:
    before = [1] * 20 + [0] * 5
    after = [0] * 8 + [1] * 12 + [0] * 4 + [1]  # 8 right→wrong, 1 wrong→right
    t = mcnemar(before, after)
    assert (t.better, t.worse_fixed, t.exact) == (8, 1, True)
    assert t.p_value == pytest.approx(sum(math.comb(9, k) for k in range(8, 10)) / 2**9)
    big = mcnemar([1] * 60 + [0] * 40, [0] * 30 + [1] * 30 + [1] * 10 + [0] * 30)
    assert (big.better, big.worse_fixed, big.exact) == (30, 10, False) and big.p_value < 0.01
    with pytest.raises(ValueError, match="same items"):
        mcnemar([1], [1, 0])


def test_paired_bootstrap_interval_excludes_zero_for_a_real_drop() -> None:
    before = [1.0] * 200
    after = [1.0] * 150 + [0.0] * 50
    mean, lo, hi = paired_bootstrap(before, after)
    assert mean == pytest.approx(-0.25) and hi < 0 and lo < mean < hi
    same = paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert same == (0.0, 0.0, 0.0)


def _run(correct: int, n: int = 100, start: int = 0) -> dict[str, int]:
    return {f"q{i:03d}": int(i < correct) for i in range(start, start + n)}


@pytest.mark.parametrize(
    ("base", "new", "method", "dropped", "within"),
    [
        # Same items: 20 right answers turned wrong, none the other way → McNemar exact, p = 2^-20.
        (_run(95), _run(75), "mcnemar", True, False),
        # Same items, 2 turned wrong: significant? no (p = 0.25) — noise, not an incident.
        (_run(95), _run(93), "mcnemar", False, True),
        # Different items (independent samples): a two-proportion z-test.
        (_run(95), _run(70, start=100), "two_proportion_z", True, False),
    ],
)
def test_compare_runs(
    base: dict[str, int], new: dict[str, int], method: str, dropped: bool, within: bool
) -> None:
    v = compare_runs(base, new, margin=0.05)
    assert (v.method, v.dropped, v.within_baseline) == (method, dropped, within)
    if method == "mcnemar":
        assert len(v.newly_wrong) == round((v.base_accuracy - v.new_accuracy) * 100)
        assert v.diff_interval is not None and v.diff_interval[1] <= 0


def test_compare_runs_paired_p_value_is_the_exact_binomial() -> None:
    v = compare_runs(_run(95), _run(75), margin=0.05)
    assert v.p_value == pytest.approx(0.5**20) and v.newly_wrong == tuple(f"q{i:03d}" for i in range(75, 95))


def test_compare_runs_small_set_carries_the_power_note() -> None:
    v = compare_runs(_run(18, n=20), _run(17, n=20), margin=0.05)
    assert v.power_note is not None and v.power_note.startswith("20 golden items cannot reliably detect")
