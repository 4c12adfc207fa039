"""Contextual Diversity (greedy k-center on symmetric KL) and self-supervised prototypes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from coreset.scores import registry
from helpers_selectors import make_ctx


def _score(name: str, ctx, balance: bool = True, seed: int = 0, **params) -> np.ndarray:
    return registry.get(name).fn(ctx, rng=np.random.default_rng(seed), balance=balance, **params)


# ---------------------------------------------------------------------------- contextual diversity


def _brute_cd_order(probs: np.ndarray, length: int, first: int) -> list[int]:
    """k-center greedy on the full n x n contextual-diversity matrix (DeepCore's definition)."""
    p = np.clip(probs.astype(np.float64), 1e-8, None)
    p /= p.sum(axis=1, keepdims=True)
    a, b = p[:, None, :], p[None, :, :]
    dist = np.sum(0.5 * a * np.log(a / b) + 0.5 * b * np.log(b / a), axis=2)
    order = [first]
    while len(order) < length:
        nearest = dist[:, order].min(axis=1)
        nearest[order] = -np.inf
        order.append(int(np.argmax(nearest)))
    return order


def _scores_from_orders(labels: np.ndarray, orders: dict[int, list[int]]) -> np.ndarray:
    score = np.full(len(labels), -np.inf)
    for order in orders.values():
        score[order] = np.arange(len(order), 0, -1)
    return score


@pytest.mark.parametrize("balance", [True, False])
def test_contextual_diversity_matches_brute_force_k_center(balance: bool) -> None:
    rng = np.random.default_rng(3)
    n, c = 80, 4
    labels = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c) * 0.3, size=n)
    probs[5] = 0.0  # a hard zero must not produce nan
    probs[5, 1] = 1.0
    ctx = make_ctx(labels, c, probs=probs)
    got = _score("contextual_diversity", ctx, balance=balance, seed=7, max_ratio=0.6)

    groups = [np.flatnonzero(labels == k) for k in np.unique(labels)] if balance \
        else [np.arange(n)]
    # each class draws its first pick from its own generator, spawned in class order
    draws = np.random.default_rng(7).spawn(len(groups)) if balance else [np.random.default_rng(7)]
    orders = {}
    for g, idx in enumerate(groups):
        first = int(draws[g].integers(len(idx)))
        length = int(np.ceil(0.6 * len(idx)))
        orders[g] = list(idx[_brute_cd_order(ctx.probs[0, idx], length, first)])
    np.testing.assert_array_equal(got, _scores_from_orders(labels, orders))
    for idx in groups:  # the greedy stops at ceil(max_ratio * n_c) picks
        assert np.isfinite(got[idx]).sum() == int(np.ceil(0.6 * len(idx)))


def test_contextual_diversity_memory_is_linear_in_n() -> None:
    rng = np.random.default_rng(0)
    n, c, ratio = 40_000, 10, 0.01
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    ctx = make_ctx(np.zeros(n, dtype=np.int64), c, probs=probs)
    fn = registry.get("contextual_diversity").fn  # imports happen outside the traced region
    tracemalloc.start()
    try:
        score = fn(ctx, rng=np.random.default_rng(0), balance=False, max_ratio=ratio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    budget = int(np.ceil(ratio * n))
    assert np.isfinite(score).sum() == budget
    # DeepCore's budget x N float32 distance matrix alone would be 16 MB; n x n would be 6.4 GB.
    # Ours: a handful of (N, C) float64 arrays (3.2 MB each) and (N,) vectors.
    assert peak < 16e6, peak
    assert peak < budget * n * 4


def test_contextual_diversity_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 50)
    ctx = make_ctx(labels, 3, probs=rng.dirichlet(np.ones(3), size=50))
    a = _score("contextual_diversity", ctx, seed=11)
    np.testing.assert_array_equal(a, _score("contextual_diversity", ctx, seed=11))
    assert not np.array_equal(a, _score("contextual_diversity", ctx, seed=12))


# ---------------------------------------------------------------------------- prototypes


def _blobs_with_outlier(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 10
    x = np.vstack([ctr + rng.normal(0, 0.5, (30, 3)) for ctr in centres])
    x = np.vstack([x, [[-6.0, -6.0, -6.0]]])
    labels = np.repeat([0, 1, 2, 0], [30, 30, 30, 1])
    return x, labels


@pytest.mark.parametrize("normalize", [True, False])
def test_self_sup_prototypes_ranks_an_outlier_first(normalize: bool) -> None:
    x, labels = _blobs_with_outlier()
    ctx = make_ctx(labels, 3, features=x)
    score = _score("self_sup_prototypes", ctx, balance=False, normalize=normalize)
    assert np.argmax(score) == len(x) - 1
    assert np.all(score >= 0)
    spec = registry.get("self_sup_prototypes")
    assert spec.window == "top" and not spec.balance


def test_self_sup_prototypes_is_deterministic_and_ignores_labels() -> None:
    x, labels = _blobs_with_outlier(1)
    a = _score("self_sup_prototypes", make_ctx(labels, 3, features=x), seed=5)
    b = _score("self_sup_prototypes", make_ctx(labels[::-1].copy(), 3, features=x), seed=5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("normalize", [True, False])
def test_self_sup_prototypes_above_the_lloyd_limit_uses_minibatch_kmeans(monkeypatch, capsys,
                                                                         normalize: bool) -> None:
    """Past FULL_KMEANS_MAX = N k D, MiniBatchKMeans clusters (said on stdout); on well separated
    clusters its distances are the brute-force distances to the true cluster means, like Lloyd's."""
    from coreset.scores import prototypes

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8)) * 20 + 40
    x = (centres[np.arange(600) % 3] + rng.standard_normal((600, 8))).astype(np.float32)
    ctx = make_ctx(np.arange(600) % 3, 3, features=x)
    monkeypatch.setattr(prototypes, "FULL_KMEANS_MAX", 0)
    score = registry.get("self_sup_prototypes").fn(ctx, rng=np.random.default_rng(1),
                                                   balance=False, normalize=normalize)
    assert "MiniBatchKMeans" in capsys.readouterr().out
    means = np.stack([x[np.arange(600) % 3 == c].mean(axis=0) for c in range(3)]).astype(float)
    if normalize:
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        m = means / np.linalg.norm(means, axis=1, keepdims=True)
        want = 1.0 - (u @ m.T).max(axis=1)
    else:
        want = np.linalg.norm(x[:, None] - means[None], axis=2).min(axis=1)
    assert np.corrcoef(score, want)[0, 1] > 0.99
