"""Windows, balance and budgets against hand-worked answers."""

import numpy as np
import pytest

from coreset.data.label_noise import flip_labels
from coreset.scores.selection import budget, class_budgets, moderate_band, select, window_pick

RNG = np.random.default_rng(0)
WINDOWS = ("top", "bottom", "moderate", "two-ends", "random")


def test_budget_rounds_the_written_decimal_half_up():
    # 0.35 * 90 is 31.499999999999996 in binary floats; the rate means 31.5 -> 32
    assert [budget(90, 0.35), budget(10, 0.25), budget(10, 0.35), budget(4, 0.125)] == \
        [32, 3, 4, 1]


def test_one_rounding_rule_for_selection_and_label_noise():
    labels = np.arange(90) % 3
    for n, rate in ((90, 0.35), (90, 0.2), (77, 0.35), (10, 0.45), (1000, 0.0005)):
        flipped = flip_labels(labels[:n] if n <= 90 else np.arange(n) % 3, rate, 3, "symmetric",
                              np.random.default_rng(0))
        assert (flipped != (labels[:n] if n <= 90 else np.arange(n) % 3)).sum() == \
            budget(n, rate)


@pytest.mark.parametrize(
    ("window", "k", "expected"),
    [
        ("top", 2, [4, 1]),  # scores 9 and 7
        ("bottom", 2, [3, 0]),  # scores 0 and 1
        ("moderate", 2, [5, 2]),  # ascending 0,1,3,5,7,9 -> ranks [2, 4): 3 (idx 5), 5 (idx 2)
        ("two-ends", 3, [4, 1, 3]),  # 2 highest + 1 lowest
    ],
)
def test_windows_hand_worked(window, k, expected):
    scores = np.array([1.0, 7.0, 5.0, 0.0, 9.0, 3.0])
    assert window_pick(scores, k, window, RNG).tolist() == sorted(expected)


def test_moderate_band_matches_reference_rank_formula():
    # reference: ranks [round(n*(0.5 - r/2)), round(n*(0.5 + r/2))) of the ascending sort
    scores = np.arange(100.0)[::-1].copy()
    picked = window_pick(scores, 20, "moderate", RNG)
    assert sorted(scores[picked].tolist()) == list(range(40, 60))


def reference_moderate_kept(distance, rate):
    """Re-statement of Moderate-DS's get_prune_idx (selection.py of the reference code): the
    PRUNED ids are the ascending ranks below round(N * (0.5 - rate/2)) and from
    round(N * (0.5 + rate/2)) on (Python's round, binary floats); the coreset is the rest."""
    low, high = 0.5 - rate / 2, 0.5 + rate / 2
    ranked = np.argsort(distance, kind="stable")
    pruned = np.concatenate([ranked[: round(len(distance) * low)],
                             ranked[round(len(distance) * high):]])
    return np.setdiff1d(np.arange(len(distance)), pruned)


def test_moderate_window_keeps_exactly_the_reference_coreset():
    labels = np.zeros(400, dtype=int)
    mismatches = []
    for n in range(10, 400):
        distance = np.random.default_rng(n).permutation(n).astype(float)  # distinct distances
        for rate in (0.2, 0.3, 0.4, 0.6, 0.8):
            kept = select(distance, labels[:n], rate, "moderate", False, RNG)
            if not np.array_equal(kept, reference_moderate_kept(distance, rate)):
                mismatches.append((n, rate))
    assert mismatches == []


def test_moderate_band_can_differ_from_the_budget_like_the_reference():
    assert moderate_band(11, 0.2) == (4, 7) and budget(11, 0.2) == 2
    assert len(select(np.arange(11.0), np.zeros(11, dtype=int), 0.2, "moderate", False, RNG)) == 3


def test_two_ends_never_repeats_a_sample_when_scores_tie():
    assert window_pick(np.zeros(6), 6, "two-ends", RNG).tolist() == list(range(6))
    assert window_pick(np.zeros(6), 3, "two-ends", RNG).tolist() == [0, 1, 2]
    # 70 % tied: 800 picks of 1000 must be 800 distinct samples
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(1000) < 0.7, 0.5, rng.random(1000))
    assert len(np.unique(window_pick(scores, 800, "two-ends", RNG))) == 800


@pytest.mark.parametrize("window", WINDOWS)
def test_every_window_returns_k_distinct_indices(window):
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        k = int(rng.integers(0, n + 1))
        scores = rng.integers(0, 3, size=n).astype(float)  # many ties
        picked = window_pick(scores, k, window, rng)
        assert len(picked) == k and len(np.unique(picked)) == k
        assert np.all((picked >= 0) & (picked < n))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("balance", [True, False])
def test_select_returns_distinct_indices_of_the_budget(window, balance):
    rng = np.random.default_rng(2)
    for _ in range(100):
        n = int(rng.integers(20, 80))
        labels = rng.integers(0, 3, size=n)
        ratio = float(rng.uniform(0.2, 1.0))
        scores = rng.integers(0, 4, size=n).astype(float)
        kept = select(scores, labels, ratio, window, balance, rng)
        assert len(np.unique(kept)) == len(kept)
        if window != "moderate":
            assert len(kept) == budget(n, ratio)


def test_ties_are_broken_by_index():
    scores = np.zeros(6)
    assert window_pick(scores, 2, "top", RNG).tolist() == [0, 1]
    assert window_pick(scores, 2, "bottom", RNG).tolist() == [0, 1]


def test_class_budgets_exact_total_and_within_one():
    counts = np.array([10, 7, 3, 1])
    for ratio in (0.05, 0.2, 0.33, 0.5, 0.9, 1.0):
        b = class_budgets(counts, ratio)
        assert b.sum() == budget(counts.sum(), ratio)
        assert np.all(b <= counts)
        assert np.all(np.abs(b - ratio * counts) < 1 + 1e-9)


def test_class_budgets_hand_worked():
    # ratio 0.25 of [10, 7, 3] -> exact [2.5, 1.75, 0.75], total round(5.0)=5: floors [2, 1, 0],
    # two more by largest remainder: class 1 (0.75, first by index) and class 2 (0.75)
    assert class_budgets(np.array([10, 7, 3]), 0.25).tolist() == [2, 2, 1]


def test_balanced_selection_counts_per_class():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3)
    scores = np.random.default_rng(1).random(len(labels))
    idx = select(scores, labels, 0.25, "top", True, RNG)
    assert np.bincount(labels[idx]).tolist() == [2, 2, 1]
    # within each class the highest scores are kept
    for c in range(3):
        cls = np.flatnonzero(labels == c)
        kept = np.intersect1d(idx, cls)
        assert scores[kept].min() >= np.sort(scores[cls])[::-1][len(kept) - 1]


def test_ratio_one_keeps_everything():
    labels = np.array([0, 0, 1, 2, 2, 2])
    for balance in (True, False):
        for window in ("top", "bottom", "moderate", "two-ends", "random"):
            idx = select(np.arange(6.0), labels, 1.0, window, balance, RNG)
            assert idx.tolist() == list(range(6))


def test_class_with_one_sample():
    labels = np.array([0] * 9 + [1])
    idx = select(np.arange(10.0), labels, 0.5, "top", True, RNG)
    assert len(idx) == 5
    # exact budgets 4.5 and 0.5, total 5: the tie of remainders goes to the smaller class
    assert 9 in idx


def test_global_selection_ignores_classes():
    labels = np.array([0, 0, 0, 1, 1, 1])
    idx = select(np.array([6.0, 5, 4, 3, 2, 1]), labels, 0.5, "top", False, RNG)
    assert idx.tolist() == [0, 1, 2]


def test_partial_greedy_order_refuses_to_fill_silently():
    scores = np.array([3.0, 2.0, -np.inf, -np.inf])
    with pytest.raises(ValueError, match="max_ratio"):
        select(scores, np.zeros(4, dtype=int), 0.75, "top", False, RNG)


def test_random_window_is_seeded():
    labels = np.zeros(50, dtype=int)
    a = select(np.zeros(50), labels, 0.2, "random", False, np.random.default_rng(3))
    b = select(np.zeros(50), labels, 0.2, "random", False, np.random.default_rng(3))
    c = select(np.zeros(50), labels, 0.2, "random", False, np.random.default_rng(4))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        select(np.zeros(3), np.zeros(3, dtype=int), 0.0, "top", False, RNG)


def test_a_ratio_that_keeps_nothing_is_refused_with_the_smallest_that_does():
    labels = np.zeros(1000, dtype=int)
    with pytest.raises(ValueError, match=r"ratio = 0.0001 keeps no sample .* is 0.0005$"):
        select(np.zeros(1000), labels, 0.0001, "top", False, RNG)
    assert len(select(np.zeros(1000), labels, 0.0005, "top", False, RNG)) == 1


def test_a_ratio_that_keeps_no_sample_of_a_class_is_refused():
    labels = np.array([0] * 100 + [1] * 100 + [2] * 4)
    # 0.01 of 204 = 2.04 -> 2 samples, split [1, 1, 0]: class 2 would be left out
    with pytest.raises(ValueError, match=r"keeps no sample of class 2 \(4 samples\)") as err:
        select(np.zeros(204), labels, 0.01, "top", True, RNG)
    smallest = float(str(err.value).rsplit(" ", 1)[1])
    assert np.bincount(labels[select(np.zeros(204), labels, smallest, "top", True, RNG)]).min() == 1
    below = np.nextafter(smallest * (1 - 1e-4), 0)
    with pytest.raises(ValueError, match="keeps no sample"):
        select(np.zeros(204), labels, below, "top", True, RNG)


def test_moderate_window_refuses_an_empty_band():
    with pytest.raises(ValueError, match="keeps no sample"):
        select(np.arange(10.0), np.zeros(10, dtype=int), 0.05, "moderate", False, RNG)
