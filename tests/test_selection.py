"""Windows, balance and budgets against hand-worked answers."""

import numpy as np
import pytest

from coreset.selection import budget, class_budgets, round_half_up, select, window_pick

RNG = np.random.default_rng(0)


def test_round_half_up_differs_from_bankers_rounding():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 2.4999)] == [1, 2, 3, 2]


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
