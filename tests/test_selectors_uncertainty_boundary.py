"""Uncertainty (least confidence, entropy, margin), DeepFool and CAL: directions and exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coreset.scores import registry
from coreset.scores.boundary import (
    _knn,
    deepfool_norms,
    deepfool_perturbation,
    neighbour_divergence,
)
from helpers_selectors import LinearNet, make_access, make_ctx, trained_bn_cnn


def _score(name: str, ctx, balance: bool = True, seed: int = 0, **params) -> np.ndarray:
    spec = registry.get(name)
    return spec.fn(ctx, rng=np.random.default_rng(seed), balance=balance, **params)


# ---------------------------------------------------------------------------- uncertainty

CONFIDENT = [0.96, 0.02, 0.02]


def _probs_with(row: list[float], at: int, n: int = 6) -> np.ndarray:
    p = np.tile(CONFIDENT, (n, 1))
    p[at] = row
    return p


@pytest.mark.parametrize("name", ["least_confidence", "entropy", "margin"])
@pytest.mark.parametrize("balance", [True, False])
def test_most_uncertain_sample_is_ranked_first(name: str, balance: bool) -> None:
    ctx = make_ctx(np.array([0, 1, 2, 0, 1, 2]), 3, probs=_probs_with([0.34, 0.33, 0.33], at=4))
    score = _score(name, ctx, balance=balance)
    assert np.argmax(score) == 4
    assert registry.get(name).window == "top"


def test_uncertainty_scores_differ_as_their_definitions_say() -> None:
    # Sample 1 sits between two classes (small margin); sample 2 is spread over three (high
    # entropy, low max probability).
    p = np.array([CONFIDENT, [0.50, 0.49, 0.01], [0.40, 0.30, 0.30]])
    ctx = make_ctx(np.array([0, 0, 0]), 3, probs=p)
    assert np.argmax(_score("margin", ctx)) == 1
    assert np.argmax(_score("entropy", ctx)) == 2
    assert np.argmax(_score("least_confidence", ctx)) == 2
    np.testing.assert_allclose(_score("least_confidence", ctx), [0.04, 0.5, 0.6], atol=1e-6)
    np.testing.assert_allclose(_score("margin", ctx), [-0.94, -0.01, -0.1], atol=1e-6)


def test_uncertainty_averages_over_models() -> None:
    p0 = _probs_with([0.34, 0.33, 0.33], at=0, n=3)
    p1 = _probs_with([0.34, 0.33, 0.33], at=2, n=3)
    ctx = make_ctx(np.array([0, 1, 2]), 3, probs=np.stack([p0, p1]))
    both = _score("least_confidence", ctx, models="all")
    first = _score("least_confidence", ctx, models="first")
    np.testing.assert_allclose(both, [(0.66 + 0.04) / 2, 0.04, (0.66 + 0.04) / 2], atol=1e-6)
    assert np.argmax(first) == 0
    with pytest.raises(ValueError, match="models"):
        _score("entropy", ctx, models="some")


# ---------------------------------------------------------------------------- DeepFool


def _linear_problem(seed: int = 0, n: int = 40, c: int = 4, d: int = 6):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c, d, generator=g)
    b = torch.randn(c, generator=g)
    x = torch.randn(n, d, generator=g) * 2
    return w, b, x


def _closed_form_distance(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    w, b, x = w.double(), b.double(), x.double()
    f = x @ w.T + b
    k = f.argmax(dim=1)
    out = []
    for i in range(len(x)):
        d = [abs(float(f[i, k[i]] - f[i, j])) / float((w[k[i]] - w[j]).norm())
             for j in range(len(b)) if j != k[i]]
        out.append(min(d))
    return np.array(out)


def test_deepfool_on_a_linear_model_is_the_distance_to_the_nearest_boundary() -> None:
    w, b, x = _linear_problem()
    y = torch.zeros(len(x), dtype=torch.long)
    access = make_access([LinearNet(w, b)], x, y)
    ctx = make_ctx(np.zeros(len(x), dtype=np.int64), len(b), model=access)
    overshoot = 0.02
    r = -_score("deepfool", ctx, overshoot=overshoot, batch_size=16)
    d = _closed_form_distance(w, b, x)
    ratio = r / d
    assert np.all(ratio >= 1 - 1e-5), ratio.min()
    assert np.all(ratio <= 1 + overshoot + 1e-3), ratio.max()
    assert np.argmax(-r) == np.argmin(d)  # the closest to a boundary is taken first
    assert registry.get("deepfool").needs_model


def test_deepfool_perturbation_flips_a_nonlinear_model_and_is_batch_independent() -> None:
    net, x, _ = trained_bn_cnn(seed=1, n=12)
    full = deepfool_norms(net, x, max_iter=50, overshoot=0.02, candidates=0)
    halves = torch.cat([deepfool_norms(net, x[:5], max_iter=50, overshoot=0.02, candidates=0),
                        deepfool_norms(net, x[5:], max_iter=50, overshoot=0.02, candidates=0)])
    assert torch.all(torch.isfinite(full)) and torch.all(full > 0)
    r, stuck = deepfool_perturbation(net, x, max_iter=50, overshoot=0.02, candidates=0)
    with torch.no_grad():
        assert not stuck.any()
        assert torch.all(net(x + r).argmax(dim=1) != net(x).argmax(dim=1))
    torch.testing.assert_close(full, halves, rtol=1e-4, atol=1e-6)
    # Restricting the search to the top-2 classes can only find a farther (or equal) boundary.
    top2 = deepfool_norms(net, x, max_iter=50, overshoot=0.02, candidates=2)
    assert torch.all(top2 >= full * (1 - 1e-3))


# ---------------------------------------------------------------------------- CAL


def _brute_cal(features, probs, labels, k, divergence, balance):
    n = len(labels)
    p = np.clip(probs.astype(np.float64), 1e-8, None)
    p /= p.sum(axis=1, keepdims=True)
    out = np.zeros(n)
    for i in range(n):
        pool = np.flatnonzero(labels == labels[i]) if balance else np.arange(n)
        pool = pool[pool != i]
        dist = np.linalg.norm(features[pool] - features[i], axis=1)
        nb = pool[np.argsort(dist, kind="stable")[:k]]
        kl_ji = [np.sum(p[j] * np.log(p[j] / p[i])) for j in nb]
        kl_ij = [np.sum(p[i] * np.log(p[i] / p[j])) for j in nb]
        out[i] = np.mean(kl_ji) if divergence == "kl" else np.mean(
            0.5 * np.array(kl_ji) + 0.5 * np.array(kl_ij))
    return out


@pytest.mark.parametrize("divergence", ["kl", "symmetric"])
def test_cal_ranks_the_sample_contradicting_its_neighbours_first(divergence: str) -> None:
    rng = np.random.default_rng(0)
    n = 30
    labels = np.array([0] * n + [1] * n)
    features = np.vstack([rng.normal(0, 1, (n, 3)), rng.normal(5, 1, (n, 3))])
    probs = np.where(labels[:, None] == 0, [0.9, 0.1], [0.1, 0.9])
    odd = int(np.argmin(np.linalg.norm(features[:n], axis=1)))  # in the middle of class 0
    probs[odd] = [0.2, 0.8]
    ctx = make_ctx(labels, 2, features=features, probs=probs)
    score = _score("cal", ctx, divergence=divergence)
    assert np.argmax(score) == odd  # DeepCore would keep the LOWEST divergence: not this one
    assert registry.get("cal").window == "top" and registry.get("cal").balance


@pytest.mark.parametrize("balance", [True, False])
@pytest.mark.parametrize("divergence", ["kl", "symmetric"])
def test_cal_matches_a_brute_force_knn(balance: bool, divergence: str) -> None:
    rng = np.random.default_rng(1)
    n, c = 60, 3
    labels = rng.integers(0, c, n)
    features = rng.normal(size=(n, 5))
    probs = rng.dirichlet(np.ones(c) * 0.5, size=n)
    ctx = make_ctx(labels, c, features=features, probs=probs)
    got = _score("cal", ctx, balance=balance, neighbors=4, divergence=divergence)
    want = _brute_cal(ctx.features.astype(np.float64), ctx.probs[0], labels, 4, divergence,
                      balance)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_knn_never_returns_the_point_itself_even_with_duplicates() -> None:
    x = np.array([[0.0], [0.0], [0.0], [1.0], [5.0]])
    knn = _knn(x, 2)
    assert knn.shape == (5, 2)
    assert not np.any(knn == np.arange(5)[:, None])
    assert _knn(x[:1], 3).shape == (1, 0)
    assert np.all(neighbour_divergence(np.ones((1, 2)) / 2, _knn(x[:1], 3), "kl") == 0)


def test_deepfool_gives_inf_when_no_boundary_can_be_reached() -> None:
    w, b = torch.zeros(3, 4), torch.tensor([1.0, 0.0, 0.0])  # a constant classifier
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    norms = deepfool_norms(LinearNet(w, b), x, max_iter=5, overshoot=0.02, candidates=0)
    assert torch.all(torch.isinf(norms))
    w, b, x = _linear_problem(n=5)
    one = deepfool_norms(LinearNet(w, b), x, max_iter=5, overshoot=0.02, candidates=1)
    assert torch.all(torch.isinf(one))  # no other class to move towards


def test_deepfool_ranks_unreachable_samples_last_and_serves_every_ratio() -> None:
    """A sample with no boundary is infinitely far: ranked below every finite distance, with a
    finite score, so that ratio 1.0 and the bottom window work (-inf means "not ranked")."""
    from coreset.scores.selection import select

    _, _, x = _linear_problem(n=6)
    y = torch.zeros(6, dtype=torch.long)
    stuck_net = LinearNet(torch.zeros(4, 6), torch.tensor([1.0, 0.0, 0.0, 0.0]))  # constant
    ctx_stuck = make_ctx(np.zeros(6, dtype=np.int64), 4, model=make_access([stuck_net], x, y))
    score = _score("deepfool", ctx_stuck)
    assert np.isfinite(score).all() and (score == -np.finfo(np.float64).max).all()
    labels = np.zeros(6, dtype=np.int64)
    for window in ("top", "bottom", "moderate", "two-ends"):
        assert len(select(score, labels, 1.0, window, True, np.random.default_rng(0))) == 6
