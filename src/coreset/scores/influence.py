"""Influence-function scores on the last linear layer: the Moderate paper's "Optimization-based"
baseline (Yang et al. 2023, "Dataset pruning: reducing training data by examining generalization
influence", ICLR).

Parameters theta = (W, b) of the classifier, in the (C, D+1) layout Theta = [W | b]; sample i has
features h_i, augmented a_i = [h_i; 1], softmax p_i and error e_i = p_i - onehot(y_i), so its loss
gradient is G_i = e_i a_i^T and the Hessian of the mean CE loss is, exactly,

    H = (1/N) sum_i (diag(p_i) - p_i p_i^T) (x) a_i a_i^T     (C(D+1) square).

Removing sample i moves theta by about (1/N) H^{-1} g_i (Koh & Liang 2017): Yang et al. call
I_i = -H^{-1} g_i the sample's parameter influence, and prune the largest set whose summed parameter
influence stays small (||sum_{i in pruned} I_i|| <= epsilon). Since ||sum I_i|| <= sum ||I_i||,
pruning the samples with the smallest ||I_i|| first prunes the most samples under that (sufficient)
constraint: the default score ``param_norm`` = ||H^{-1} g_i||, keep the largest (window ``top``).

The per-sample gradients are ``ctx.last_layer_grads`` up to a permutation of coordinates (that
puts the bias first); they are built in blocks of samples, never for all N at once.

An earlier default, |g_i^T H^{-1} sum_j g_j| (the change of the total training loss), ranked along
sum_j g_j, which at the pretrained optimum is only the weight-decay residual (the gradient of the
unregularised loss vanishes up to it): its exact and K-FAC versions agreed at rank correlation
0.61. It is gone.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.linalg as sla

from coreset.scores.context import ScoringContext
from coreset.scores.params import POSITIVE, Choice, Int
from coreset.scores.registry import register
from coreset.scores.scale import Cost

KINDS = ("param_norm", "self")
HESSIANS = ("auto", "exact", "kfac")

_BLOCK_ELEMENTS = 1 << 22  # rows x columns per block of per-sample vectors (32 MiB in float64)


def _inputs(ctx: ScoringContext, rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e, a, p) of samples ``rows``: errors p - onehot (B, C), augmented features [h, 1]
    (B, D+1), softmax (B, C), float64.

    The errors and probabilities are those of the first model, whose features are stored.
    """
    p = ctx.probs[0, rows].astype(np.float64)
    e = p - ctx.onehot(rows).astype(np.float64)
    h = ctx.features[rows].astype(np.float64)
    a = np.hstack([h, np.ones((len(h), 1))])
    return e, a, p


def _blocks(n: int, width: int) -> Iterator[slice]:
    """Row slices of at most _BLOCK_ELEMENTS / width rows each."""
    step = max(1, _BLOCK_ELEMENTS // max(width, 1))
    return (slice(s, min(n, s + step)) for s in range(0, n, step))


def exact_hessian(ctx: ScoringContext) -> np.ndarray:
    """The exact (C(D+1))^2 Hessian of the mean CE loss w.r.t. Theta = [W | b], row-major vec.

    H = (1/N) [blockdiag_c(sum_i p_ic a_i a_i^T) - sum_i v_i v_i^T], v_i = p_i (x) a_i, built in
    blocks of samples. Time O(N C^2 D^2), memory O(C^2 D^2).
    """
    c, d1 = ctx.num_classes, ctx.features.shape[1] + 1
    h = np.zeros((c * d1, c * d1))
    for s in _blocks(ctx.n, c * d1):
        _, a, p = _inputs(ctx, s)
        v = (p[:, :, None] * a[:, None, :]).reshape(-1, c * d1)
        h -= v.T @ v
        diag = np.einsum("ic,id,ie->cde", p, a, a, optimize=True)
        for k in range(c):
            h[k * d1:(k + 1) * d1, k * d1:(k + 1) * d1] += diag[k]
    return h / ctx.n


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


def _exact_scores(ctx: ScoringContext, damping: float, kind: str) -> np.ndarray:
    c, d1 = ctx.num_classes, ctx.features.shape[1] + 1
    h = _fill_class_sum_null_space(_damped(exact_hessian(ctx), damping), c, d1)
    chol = sla.cho_factor(h, lower=True)
    out = np.empty(ctx.n)
    for s in _blocks(ctx.n, c * d1):
        e, a, _ = _inputs(ctx, s)
        g = (e[:, :, None] * a[:, None, :]).reshape(-1, c * d1).T  # (C(D+1), B)
        if kind == "self":  # g^T H^{-1} g = ||L^{-1} g||^2
            out[s] = np.square(sla.solve_triangular(chol[0], g, lower=True)).sum(axis=0)
        else:
            out[s] = np.linalg.norm(sla.cho_solve(chol, g), axis=0)
    return out


def _kfac_factors(ctx: ScoringContext, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """The damped K-FAC factors E[diag p - p p^T] (C x C, class-sum null space lifted) and
    E[a a^T] ((D+1) x (D+1)), summed over blocks of samples. The column sums run row after row
    across blocks (numpy's axis-0 sum is sequential), so they match a whole-array sum bit for
    bit; the Gram products do whenever N fits one block (then the code path is the same)."""
    n, c, d1 = ctx.n, ctx.num_classes, ctx.features.shape[1] + 1
    p_sum, ppt, aat = np.zeros(c), np.zeros((c, c)), np.zeros((d1, d1))
    for s in _blocks(n, c + d1):
        _, a, p = _inputs(ctx, s)
        p_sum = np.add.reduce(np.vstack([p_sum[None], p]), axis=0) if s.start else p.sum(axis=0)
        ppt += p.T @ p
        aat += a.T @ a
    a_fac = _damped(np.diag(p_sum / n) - ppt / n, damping)
    return _fill_class_sum_null_space(a_fac, c, 1), _damped(aat / n, damping)


def _kfac_scores(ctx: ScoringContext, damping: float, kind: str) -> np.ndarray:
    a_fac, s_fac = _kfac_factors(ctx, damping)
    out = np.empty(ctx.n)
    for s in _blocks(ctx.n, ctx.num_classes + ctx.features.shape[1] + 1):
        e, a, _ = _inputs(ctx, s)
        # (A (x) S)^{-1} (e (x) a) = (A^{-1} e) (x) (S^{-1} a) for g = e (x) a
        ae, sa = np.linalg.solve(a_fac, e.T).T, np.linalg.solve(s_fac, a.T).T
        if kind == "self":  # (e^T A^{-1} e) (a^T S^{-1} a)
            out[s] = np.einsum("ic,ic->i", e, ae) * np.einsum("id,id->i", a, sa)
        else:
            out[s] = np.linalg.norm(ae, axis=1) * np.linalg.norm(sa, axis=1)
    return out


def _cost(n: int, c: int, d: int, params: dict) -> tuple[float, float]:
    dim = c * (d + 1)
    if params["hessian"] == "exact" or (params["hessian"] == "auto"
                                        and dim <= params["max_exact_dim"]):
        return 2.0 * n * dim * dim + dim**3 / 3, 8.0 * dim * dim
    return 2.0 * n * (2 * c * c + (d + 1) ** 2) + c**3 + d**3, 8.0 * (c * c + d * d)


def choose_hessian(hessian: str, dim: int, max_exact_dim: int) -> str:
    """``exact`` or ``kfac``: ``auto`` is exact while the C(D+1) parameters are at most
    ``max_exact_dim`` (the exact Hessian is dim^2 float64), K-FAC above; the choice is printed."""
    if hessian != "auto":
        return hessian
    chosen = "exact" if dim <= max_exact_dim else "kfac"
    print(f"influence: hessian=auto -> {chosen} (C(D+1) = {dim} parameters, "
          f"max_exact_dim = {max_exact_dim})")
    return chosen


@register(
    "influence", family="importance", balance=False,
    paper="Yang et al. 2023, Dataset pruning: examining generalization influence (ICLR)",
    params={"kind": Choice(KINDS), "hessian": Choice(HESSIANS), "damping": POSITIVE,
            "max_exact_dim": Int(1)},
    cost=Cost("the exact Hessian has (C (D + 1))^2 float64 entries and costs O(N C^2 D^2 + "
              "C^3 D^3) (K-FAC: O(N (C^2 + D^2)))", lambda n, c, d, balance, p: _cost(n, c, d, p)),
)
def influence(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    kind: str = "param_norm",
    hessian: str = "auto",
    damping: float = 1e-3,
    max_exact_dim: int = 4096,
) -> np.ndarray:
    """Last-layer influence of each sample (Yang et al. 2023), keep the largest.

    ``kind="param_norm"`` (default): ||H^{-1} g_i||, the norm of Yang et al.'s parameter influence
    (the module docstring says why the largest are kept); ``"self"``: g_i^T H^{-1} g_i, the
    first-order change of sample i's own loss when it is removed (Koh & Liang's self-influence).
    H gets a relative damping: + damping * mean(diag H) * I. Its exact null space {1 (x) v}
    (softmax ignores a shift common to all logits) is lifted without changing any score, since
    every gradient is orthogonal to it.

    ``hessian``: ``exact`` (see the module docstring): time O(N C^2 D^2 + C^3 D^3), memory
    O(C^2 D^2) (digits: 1290^2; CIFAR-100 x 512 would be 51300^2). ``kfac``: the approximation
    E[(diag p - p p^T) (x) a a^T] ~= E[diag p - p p^T] (x) E[a a^T], each factor damped relative to
    its own scale: it ignores the correlation between a sample's prediction and its features, and
    is exact when all samples have the same softmax output; time O(N (C^2 + D^2) + C^3 + D^3),
    memory O(N (C + D) + C^2 + D^2). ``auto`` (default): exact while C(D+1) <= ``max_exact_dim``,
    else K-FAC, and the choice is printed. Never N x N or N x C(D+1).

    Differences from Yang et al.: they use the whole network's parameters and choose the pruned
    set by a constrained discrete optimisation; like the Moderate paper's reproduction, we score
    samples one by one and let the window take the largest, and we restrict theta to the last
    layer, where H is cheap and exact. ``rng`` and ``balance`` are unused (the score is
    deterministic and label-global).
    """
    dim = ctx.num_classes * (ctx.features.shape[1] + 1)
    exact = choose_hessian(hessian, dim, max_exact_dim) == "exact"
    return (_exact_scores if exact else _kfac_scores)(ctx, damping, kind)
