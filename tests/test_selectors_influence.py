"""Last-layer influence (Yang et al. 2023) against an explicit autograd Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from coreset.scores import registry
from helpers_selectors import make_ctx


def _score(ctx, **params) -> np.ndarray:
    return registry.get("influence").fn(ctx, rng=np.random.default_rng(0), balance=False,
                                        **params)


def _problem(seed: int = 0, n: int = 50, c: int = 3, d: int = 4, same_probs: bool = False):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, d)).astype(np.float32)
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    logits = h.astype(np.float64) @ w.T + b
    if same_probs:
        logits = np.tile(logits[:1], (n, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, c, n)
    return make_ctx(labels, c, features=h, probs=probs)


def _brute_force(ctx, damping: float, kind: str) -> np.ndarray:
    """Explicit Hessian of the mean CE w.r.t. theta = [b, vec W] (ctx.last_layer_grads' layout),
    by autograd on the logits z_i = W h_i + b, with the logits chosen so softmax(z_i) = p_i."""
    h = torch.tensor(ctx.features, dtype=torch.float64)
    p = torch.tensor(ctx.probs[0], dtype=torch.float64)
    y = torch.tensor(ctx.labels)
    c, d = ctx.num_classes, h.shape[1]
    offset = torch.log(p)  # the loss is evaluated at theta = 0 plus these logits

    def mean_loss(theta: torch.Tensor) -> torch.Tensor:
        b, w = theta[:c], theta[c:].reshape(c, d)
        return torch.nn.functional.cross_entropy(offset + h @ w.T + b, y)

    hess = torch.autograd.functional.hessian(mean_loss, torch.zeros(c + c * d, dtype=torch.float64))
    hess = hess.numpy()
    hess += damping * np.trace(hess) / len(hess) * np.eye(len(hess))
    g = ctx.last_layer_grads(np.arange(ctx.n)).astype(np.float64)
    if kind == "total":
        return np.abs(g @ np.linalg.solve(hess, g.sum(axis=0)))
    return np.einsum("ij,ji->i", g, np.linalg.solve(hess, g.T))


@pytest.mark.parametrize("kind", ["total", "self"])
def test_exact_influence_matches_an_explicit_hessian(kind: str) -> None:
    ctx = _problem()
    got = _score(ctx, kind=kind, damping=1e-2)
    want = _brute_force(ctx, 1e-2, kind)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert registry.get("influence").window == "top"


@pytest.mark.parametrize("kind", ["total", "self"])
def test_kfac_is_exact_when_every_sample_has_the_same_prediction(kind: str) -> None:
    # Then mean_i (A_i (x) a_i a_i^T) = A (x) mean_i a_i a_i^T: the Kronecker factorisation holds,
    # and with negligible damping both paths give the same scores.
    ctx = _problem(seed=1, same_probs=True)
    exact = _score(ctx, kind=kind, damping=1e-9)
    kfac = _score(ctx, kind=kind, damping=1e-9, max_exact_dim=1)
    np.testing.assert_allclose(kfac, exact, rtol=1e-4)


@pytest.mark.parametrize("kind", ["total", "self"])
def test_kfac_ranks_like_the_exact_hessian_in_general(kind: str) -> None:
    ctx = _problem(seed=2, n=400, c=5, d=8)
    exact = _score(ctx, kind=kind)
    kfac = _score(ctx, kind=kind, max_exact_dim=1)
    assert not np.allclose(kfac / kfac.sum(), exact / exact.sum(), rtol=1e-3)  # not exact here
    assert spearmanr(kfac, exact).statistic > 0.9


def test_influence_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        _score(_problem(), kind="both")
