"""Tests for coreset.data.label_noise."""

from __future__ import annotations

import numpy as np
import pytest

from coreset.data.label_noise import flip_labels


def _labels(n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, num_classes, n)


@pytest.mark.parametrize("mode", ["symmetric", "pair"])
@pytest.mark.parametrize(
    "n, rate, expected",
    [(100, 0.2, 20), (20, 0.35, 7), (10, 0.35, 4), (9, 0.5, 5), (50, 0.0, 0), (30, 1.0, 30)],
)
def test_exact_count_never_same(mode: str, n: int, rate: float, expected: int) -> None:
    labels = _labels(n, 10)
    before = labels.copy()
    out = flip_labels(labels, rate, 10, mode, np.random.default_rng(0))
    assert np.array_equal(labels, before), "input modified in place"
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert (out != labels).sum() == expected  # round-half-up, and a flip always changes the label
    assert out.min() >= 0 and out.max() < 10


def test_pair_maps_to_next_class() -> None:
    labels = _labels(500, 7)
    out = flip_labels(labels, 0.4, 7, "pair", np.random.default_rng(0))
    flipped = out != labels
    assert np.array_equal(out[flipped], (labels[flipped] + 1) % 7)
    assert (labels[flipped] == 6).any() and (out[flipped] == 0).any()  # wraps around


def test_symmetric_uniform_over_other_classes() -> None:
    num_classes, n = 5, 40_000
    labels = np.zeros(n, dtype=np.int64)
    out = flip_labels(labels, 0.5, num_classes, "symmetric", np.random.default_rng(0))
    counts = np.bincount(out[out != labels], minlength=num_classes)
    assert counts[0] == 0
    expected = n * 0.5 / (num_classes - 1)
    chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
    assert chi2 < 16.3, f"not uniform over the other classes: {counts}"  # p = 0.001 at 3 dof


def test_seeded() -> None:
    labels = _labels(200, 10)
    a = flip_labels(labels, 0.3, 10, "symmetric", np.random.default_rng(1))
    b = flip_labels(labels, 0.3, 10, "symmetric", np.random.default_rng(1))
    c = flip_labels(labels, 0.3, 10, "symmetric", np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"rate": -0.1}, "rate"),
        ({"rate": 1.1}, "rate"),
        ({"num_classes": 1}, "num_classes"),
        ({"mode": "asymmetric"}, "mode"),
        ({"labels": np.array([0, 1, 10])}, "labels"),
        ({"labels": np.array([0.0, 1.0])}, "labels"),
        ({"labels": np.zeros((2, 2), dtype=int)}, "labels"),
        ({"rng": 3}, "rng"),
    ],
)
def test_validation(kwargs: dict, word: str) -> None:
    args = {
        "labels": _labels(10, 10),
        "rate": 0.2,
        "num_classes": 10,
        "mode": "symmetric",
        "rng": np.random.default_rng(0),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        flip_labels(**args)
