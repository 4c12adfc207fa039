"""Influence-function scores on the last linear layer: the Moderate paper's "Optimization-based"
baseline (Yang et al. 2023, "Dataset pruning: reducing training data by examining generalization
influence", ICLR).

Parameters theta = (W, b) of the classifier, in the (C, D+1) layout Theta = [W | b]; sample i has
features h_i, augmented a_i = [h_i; 1], softmax p_i and error e_i = p_i - onehot(y_i), so its loss
gradient is G_i = e_i a_i^T and the Hessian of the mean CE loss is, exactly,

    H = (1/N) sum_i (diag(p_i) - p_i p_i^T) (x) a_i a_i^T     (C(D+1) square).

Removing sample i moves theta by about (1/N) H^{-1} g_i (Koh & Liang 2017), which changes the total
training loss by about (1/N) s^T H^{-1} g_i with s = sum_j g_j. Yang et al. prune the samples whose
removal changes the loss the least, so we keep the largest |g_i^T H^{-1} s| (window ``top``).

The per-sample gradients are ``ctx.last_layer_grads`` up to a permutation of coordinates (that
puts the bias first); they are never materialised for all samples: s = E^T A needs O(N C D) and
g_i^T v = e_i^T V a_i, so the "total" score costs one solve plus O(N C D).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.linalg as sla

from coreset.scores.context import ScoringContext
from coreset.scores.registry import register

_BLOCK_ELEMENTS = 1 << 22  # rows x columns per block of per-sample vectors (32 MiB in float64)


def _inputs(ctx: ScoringContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e, a, p): errors p - onehot (N, C), augmented features [h, 1] (N, D+1), softmax (N, C).

    The errors and probabilities are those of the first model, whose features are stored.
    """
    p = ctx.probs[0].astype(np.float64)
    e = p - ctx.onehot().astype(np.float64)
    a = np.hstack([ctx.features.astype(np.float64), np.ones((ctx.n, 1))])
    return e, a, p


def _blocks(n: int, width: int) -> Iterator[slice]:
    """Row slices of at most _BLOCK_ELEMENTS / width rows each."""
    step = max(1, _BLOCK_ELEMENTS // max(width, 1))
    return (slice(s, min(n, s + step)) for s in range(0, n, step))


def exact_hessian(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The exact (C(D+1))^2 Hessian of the mean CE loss w.r.t. Theta = [W | b], row-major vec.

    H = (1/N) [blockdiag_c(sum_i p_ic a_i a_i^T) - sum_i v_i v_i^T], v_i = p_i (x) a_i, built in
    blocks of samples. Time O(N C^2 D^2), memory O(C^2 D^2).
    """
    n, d1 = a.shape
    c = p.shape[1]
    h = np.zeros((c * d1, c * d1))
    for s in _blocks(n, c * d1):
        v = (p[s, :, None] * a[s, None, :]).reshape(-1, c * d1)
        h -= v.T @ v
        diag = np.einsum("ic,id,ie->cde", p[s], a[s], a[s], optimize=True)
        for k in range(c):
            h[k * d1:(k + 1) * d1, k * d1:(k + 1) * d1] += diag[k]
    return h / n


def _damped(m: np.ndarray, damping: float) -> np.ndarray:
    """m + damping * mean(diag m) * I: a damping relative to m's scale, so it is unit-free."""
    return m + damping * max(np.trace(m) / len(m), 1e-12) * np.eye(len(m))


def _fill_class_sum_null_space(m: np.ndarray, c: int, d1: int) -> np.ndarray:
    """m + mean(diag m) * (11^T / C) (x) I: lift the curvature-free directions 1 (x) v.

    Softmax is invariant to adding the same vector to every class's logit, so (1 (x) v) is in
    the null space of H (and 1 of E[diag p - p p^T]); every gradient e (x) a is orthogonal to it
    because sum_c e_c = 0. Adding a multiple of the projector onto that space therefore leaves
    g^T H^{-1} v unchanged for all gradients, but makes H positive definite even with a tiny
    damping.
    """
    scale = max(np.trace(m) / len(m), 1e-12)
    return m + scale * np.kron(np.full((c, c), 1.0 / c), np.eye(d1))


def _exact_scores(e: np.ndarray, a: np.ndarray, p: np.ndarray, damping: float,
                  kind: str) -> np.ndarray:
    c, d1 = e.shape[1], a.shape[1]
    h = _fill_class_sum_null_space(_damped(exact_hessian(a, p), damping), c, d1)
    chol = sla.cho_factor(h, lower=True)
    if kind == "total":
        v = sla.cho_solve(chol, (e.T @ a).ravel()).reshape(c, d1)
        return np.einsum("ic,ic->i", e @ v, a)
    out = np.empty(len(e))
    for s in _blocks(len(e), c * d1):
        g = (e[s, :, None] * a[s, None, :]).reshape(-1, c * d1)
        z = sla.solve_triangular(chol[0], g.T, lower=True)  # ||L^{-1} g||^2 = g^T H^{-1} g
        out[s] = np.square(z).sum(axis=0)
    return out


def _kfac_scores(e: np.ndarray, a: np.ndarray, p: np.ndarray, damping: float,
                 kind: str) -> np.ndarray:
    n = len(e)
    a_fac = _damped(np.diag(p.mean(axis=0)) - p.T @ p / n, damping)  # E[diag p - p p^T], C x C
    a_fac = _fill_class_sum_null_space(a_fac, a_fac.shape[0], 1)
    s_fac = _damped(a.T @ a / n, damping)  # E[a a^T], (D+1) x (D+1)
    if kind == "total":
        # (A (x) S)^{-1} vec(X) = vec(A^{-1} X S^{-1}) for the row-major vec and symmetric A, S.
        v = np.linalg.solve(a_fac, np.linalg.solve(s_fac, (e.T @ a).T).T)
        return np.einsum("ic,ic->i", e @ v, a)
    # g^T (A (x) S)^{-1} g factorises for g = e (x) a: (e^T A^{-1} e) (a^T S^{-1} a).
    ea = np.einsum("ic,ic->i", e, np.linalg.solve(a_fac, e.T).T)
    aa = np.einsum("id,id->i", a, np.linalg.solve(s_fac, a.T).T)
    return ea * aa


@register(
    "influence", family="importance", balance=False,
    paper="Yang et al. 2023, Dataset pruning: examining generalization influence (ICLR)",
)
def influence(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    kind: str = "total",
    damping: float = 1e-3,
    max_exact_dim: int = 4096,
) -> np.ndarray:
    """Last-layer influence of each sample on the training loss (Yang et al. 2023).

    ``kind="total"``: |g_i^T H^{-1} sum_j g_j|, the (N-scaled) change of the total training loss
    when sample i is removed; ``"self"``: g_i^T H^{-1} g_i, the change of sample i's own loss.
    Both keep the largest first (window ``top``); Yang et al. prune the samples whose removal
    changes the loss the least. H gets a relative damping: + damping * mean(diag H) * I. Its
    exact null space {1 (x) v} (softmax ignores a shift common to all logits) is lifted without
    changing any score, since every gradient is orthogonal to it.

    H is exact (see the module docstring) while C(D+1) <= ``max_exact_dim``: time
    O(N C^2 D^2 + C^3 D^3), memory O(C^2 D^2) (digits: 1290^2). Above that (CIFAR-100 x 512 would
    be 51300^2) it uses the K-FAC approximation E[(diag p - p p^T) (x) a a^T] ~=
    E[diag p - p p^T] (x) E[a a^T], each factor damped relative to its own scale: it ignores the
    correlation between a sample's prediction and its features, and is exact when all samples
    have the same softmax output. Time O(N (C^2 + D^2) + C^3 + D^3), memory O(C^2 + D^2).
    Vectors are built in blocks of samples, never N x N or N x C(D+1).

    Differences from Yang et al.: they use the whole network's parameters and choose the pruned
    set by a constrained discrete optimisation of the worst-case loss change over training
    samples; like the Moderate paper's reproduction, we score samples one by one and let the
    window take the largest, and we restrict theta to the last layer, where H is cheap and exact.
    ``rng`` and ``balance`` are unused (the score is deterministic and label-global).
    """
    if kind not in ("total", "self"):
        raise ValueError(f"kind={kind!r}: allowed values are 'total' or 'self'")
    e, a, p = _inputs(ctx)
    exact = e.shape[1] * a.shape[1] <= max_exact_dim
    scores = (_exact_scores if exact else _kfac_scores)(e, a, p, damping, kind)
    return np.abs(scores)
