"""Gradient matching (CRAIG, GRAD-MATCH) and bilevel (GLISTER) selection on last-layer gradients.

All three work on the closed-form gradient of the cross-entropy w.r.t. the last linear layer of the
first pretrained model, g_i = [b_i, b_i (x) h_i] with b_i = softmax - onehot and h_i the
penultimate feature (``ctx.last_layer_grads``), as DeepCore does; ``grads="bias"`` keeps b_i only
(C dims), a much cheaper proxy. The (C + C D)-dim gradients are never materialised: inner products
are <b_i, b_j> (1 + <h_i, h_j>) and matrix-vector products go through b and h, so memory is
O(n (C + D)) per class plus the per-method state stated in each docstring.

Each selector returns a greedy order (first pick highest, never depending on the ratio: the orders
are prefix-consistent); CRAIG and GRAD-MATCH also register a weigher that the select stage calls on
the final selection.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import cho_factor, solve_triangular
from scipy.optimize import nnls
from tqdm.auto import tqdm

from coreset.scores.context import ScoringContext
from coreset.scores.greedy import (
    OPTIMIZERS,
    class_orders,
    greedy_length,
    map_classes,
    maximize,
)
from coreset.scores.kernels import (
    DEFAULT_MAX_BLOCK_BYTES,
    METRICS,
    Embedding,
    IncrementalCholesky,
    Similarity,
    embedding,
)
from coreset.scores.params import MAX_RATIO, POSITIVE, Choice, Float, Int
from coreset.scores.registry import register
from coreset.scores.scale import Cost, global_only, gradient_width, length
from coreset.scores.submodular import FacilityLocation, Grouped

GRADS = ("full_last_layer", "bias")
VALIDATION = ("train", "holdout")


def grad_embedding(ctx: ScoringContext, grads: str, idx: np.ndarray) -> Embedding:
    """Factored last-layer gradients (``full_last_layer``) or bias gradients of samples ``idx``;
    O(len(idx) (C + D)) float64 memory instead of the (C + C D) columns of DeepCore's matrix."""
    return embedding(ctx, "gradients" if grads == "full_last_layer" else "bias_gradients", idx)


def _class_groups(labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


# ----------------------------------------------------------------------------- CRAIG


def _craig_function(ctx: ScoringContext, groups: list[np.ndarray], grads: str, metric: str,
                    max_block_bytes: int) -> FacilityLocation | Grouped:
    """Facility location whose similarity is zero across ``groups`` (classes)."""
    fits = sum(len(g) ** 2 for g in groups) * 4 <= max_block_bytes
    parts = [
        FacilityLocation(Similarity(grad_embedding(ctx, grads, g), metric,
                                    max_block_bytes if fits else 0))
        for g in groups
    ]
    return parts[0] if len(parts) == 1 else Grouped(parts, groups)


def craig_weights(
    ctx: ScoringContext, selected: np.ndarray, *, grads: str = "full_last_layer",
    metric: str = "euclidean", optimizer: str = "lazy", epsilon: float = 0.9,
    max_ratio: float = 1.0, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> np.ndarray:
    """CRAIG weights (Mirzasoleiman et al. 2020): gamma_j = the number of samples of j's class whose
    most similar selected sample (same class, same similarity as the greedy) is j.

    Every selected sample represents at least itself, so weights are positive integers summing to
    the size of the classes that have a selected sample. DeepCore adds 1 to every count (its
    weights sum to n_c + k_c); we follow the paper. Time O(n_c k_c (C + D)) per class, memory
    O(n_c) plus blocks of k_c x n_c similarity rows.
    """
    def counts(members: np.ndarray, local: np.ndarray) -> np.ndarray:
        sim = Similarity(grad_embedding(ctx, grads, members), metric, max_block_bytes=0)
        return np.bincount(_nearest_selected(sim, local), minlength=len(local))

    return _per_class_weights(ctx.labels, selected, counts)


def _per_class_weights(labels: np.ndarray, selected: np.ndarray,
                       solve: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Weights of ``selected`` from ``solve(class members, positions of the class's selected
    samples among them)``, classes run concurrently on single-threaded BLAS (as scores are)."""
    selected = np.asarray(selected, dtype=np.int64)
    weights = np.zeros(len(selected))
    classes = np.unique(labels[selected])
    pos = [np.flatnonzero(labels[selected] == c) for c in classes]
    members = [np.flatnonzero(labels == c) for c in classes]
    local = [np.searchsorted(m, selected[p]) for m, p in zip(members, pos, strict=True)]
    for p, w in zip(pos, map_classes(solve, members, local), strict=True):
        weights[p] = w
    return weights


def _nearest_selected(sim: Similarity, local: np.ndarray) -> np.ndarray:
    """For every point, the position in ``local`` of its most similar selected point (first wins
    ties); selected points are their own representative."""
    best = np.full(sim.n, -np.inf)
    arg = np.zeros(sim.n, dtype=np.int64)
    step = max(1, (1 << 24) // max(sim.n, 1))  # 64 MB of float32 similarity rows at a time
    for start in range(0, len(local), step):
        rows = sim.rows(local[start : start + step])
        top = rows.max(axis=0)
        better = top > best
        best[better], arg[better] = top[better], start + rows.argmax(axis=0)[better]
    arg[local] = np.arange(len(local))
    return arg


@register("craig", family="gradient_matching", weigher=craig_weights,
          paper="Mirzasoleiman et al. 2020, CRAIG (ICML); DeepCore",
          params={"grads": Choice(GRADS), "metric": Choice(METRICS),
                  "optimizer": Choice(OPTIMIZERS),
                  "epsilon": Float(0.0, 1.0, open_low=True, open_high=True),
                  "max_ratio": MAX_RATIO, "max_block_bytes": Int(0)},
          cost=Cost("a global lazy greedy over per-class similarities: O(N n_c (C + D)) for the "
                    "first gains plus O(k N) for the argmaxes (k = max_ratio N)",
                    global_only(lambda n, c, d, p: (2.0 * n * (n / c) * gradient_width(c, d, p)
                                                    + 4.0 * length(n, p) * n, 8.0 * n))))
def craig(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
    grads: str = "full_last_layer", metric: str = "euclidean", optimizer: str = "lazy",
    epsilon: float = 0.9, max_ratio: float = 1.0, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> np.ndarray:
    """CRAIG: facility location greedy on d_max - ||g_i - g_j|| within each class, whose weighted
    coreset bounds the full-gradient error (Mirzasoleiman et al. 2020).

    Balanced (DeepCore's default): one greedy per class, as DeepCore. Global: the similarity is
    zero across classes (DeepCore's unbalanced path builds the same block matrix, N x N float64),
    so the global greedy runs on per-class states (:class:`Grouped`), never an N x N matrix. The
    global order is NOT DeepCore's, though: a class's first pick has the gain sum_i s_ij, which
    includes that class's shift, and DeepCore shifts each block by its exact d_max + 1e-3 where we
    shift by 2 max_i ||g_i - mean|| (no n_c^2 distances), so the interleaving of classes differs;
    within a class the order does not depend on the shift. DeepCore's global weights come from
    the N x N matrix, so a sample of a class without a selected sample counts for the first
    selected sample (the argmax of a zero column); ours count within classes only
    (:func:`craig_weights`). Time per class O(n_c^2 (C + D)) + lazy greedy O(evaluations * n_c);
    memory O(n_c^2) float32 (on the fly when it exceeds ``max_block_bytes``).
    """
    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        groups = [idx] if balance else _class_groups(ctx.labels)  # global: idx = arange(N)
        fn = _craig_function(ctx, groups, grads, metric, max_block_bytes)
        return maximize(fn, greedy_length(len(idx), max_ratio), optimizer, epsilon=epsilon,
                        rng=rng, show=not balance)

    return class_orders(ctx.labels, balance, greedy, rng, desc="craig")


# ----------------------------------------------------------------------------- GRAD-MATCH


def _gradmatch_cost(n: int, c: int, d: int, params: dict) -> tuple[float, float]:
    k = length(n, params)
    if params["grads"] == "bias":
        return 2.0 * k * (n * c + c**3), 8.0 * n * c
    return 2.0 * k * n * (c + d) + 2.0 * k * k * n, 8.0 * n * k


def omp_order_dual(emb: Embedding, length: int, lam: float, max_block_bytes: int,
                   show: bool = False) -> np.ndarray:
    """Regularised orthogonal matching pursuit (GRAD-MATCH) through the Gram matrix K = A A^T.

    Target b = sum_i g_i. Each step picks the largest projection <g_j, b - A_S^T x_S> among the
    unpicked, with x_S = (K_SS + lam I)^-1 A_S b re-solved on the whole picked set. With
    (K + lam I)[:, S] = Q L^T (:class:`IncrementalCholesky`) and L y = A_S b, the projections are
    A b - Q y, updated in O(n) per pick after the O(n t) Cholesky column: O(n k^2) time and
    O(n k) memory for k = ``length`` (DeepCore re-solves a t x t system per pick, O(k^4) in all,
    with the removed ``torch.lstsq`` on a hard-coded cuda device).
    """
    gram = Similarity(emb, "dot", max_block_bytes)
    target = emb.mean_inner()[0] * emb.n  # <g_i, sum_j g_j>
    chol = IncrementalCholesky(lambda j: gram.rows(np.array([j]))[0], gram.diag(), lam, length)
    proj, y = target.copy(), np.empty(length)
    order = np.empty(length, dtype=np.int64)
    for t in tqdm(range(length), desc="omp", leave=False, disable=not show or None):
        j = int(np.argmax(proj))
        q, row, pivot = chol.add(j)
        y[t] = (target[j] - row @ y[:t]) / pivot
        proj -= q * y[t]
        order[t], proj[j] = j, -np.inf  # projections of picked samples are never needed again
    return order


def omp_order_primal(a: np.ndarray, length: int, lam: float, show: bool = False) -> np.ndarray:
    """The same OMP with explicit d-dim rows ``a`` (bias gradients, d = C): the ridge residual is
    b - A_S^T x_S = lam (A_S^T A_S + lam I)^-1 b, a d x d solve per pick. O(k (n d + d^3)) time,
    O(n d + d^2) memory: the cheap path for bias gradients and for a global selection."""
    target = a.sum(axis=0)
    gram = lam * np.eye(a.shape[1])
    resid = target.copy()
    taken = np.zeros(len(a), dtype=bool)
    order = np.empty(length, dtype=np.int64)
    for t in tqdm(range(length), desc="omp", leave=False, disable=not show or None):
        proj = a @ resid
        proj[taken] = -np.inf
        j = int(np.argmax(proj))
        order[t], taken[j] = j, True
        gram += np.outer(a[j], a[j])
        resid = lam * np.linalg.solve(gram, target)
    return order


def gradmatch_weights(
    ctx: ScoringContext, selected: np.ndarray, *, grads: str = "full_last_layer", lam: float = 1.0,
    max_ratio: float = 1.0, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> np.ndarray:
    """GRAD-MATCH weights (Killamsetty et al. 2021), re-solved on the final selection: per class,
    w >= 0 minimising ||sum_{j in S_c} w_j g_j - sum_{i in c} g_i||^2 + lam ||w||^2.

    Solved exactly as NNLS: with K_SS + lam I = R^T R, the objective is ||R w - R^-T A_S b||^2 +
    const. DeepCore instead runs NNLS on the normal equations (K_SS + lam I) w ~ A_S b, a different
    problem once a constraint is active, drops zero-weight samples, and matches the class MEAN
    gradient; matching the class SUM (GRAD-MATCH's code) only scales a class's weights by n_c, so
    weights are comparable to counts and classes keep their share of the full gradient. Globally
    selected sets are weighted per class too (the block-diagonal restriction of the global
    problem). Time O(k_c^2 (C + D) + k_c^3) per class, memory O(k_c^2).
    """
    def solve(members: np.ndarray, local: np.ndarray) -> np.ndarray:
        emb = grad_embedding(ctx, grads, members)
        gram = emb.gram_rows(local, local) + lam * np.eye(len(local))
        return _ridge_nnls(gram, emb.mean_inner()[0][local] * emb.n)

    return _per_class_weights(ctx.labels, selected, solve)


def _ridge_nnls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_{w >= 0} w^T gram w - 2 rhs^T w for a positive definite ``gram``."""
    upper, _ = cho_factor(gram, lower=False)
    r = np.triu(upper)
    return nnls(r, solve_triangular(r, rhs, trans="T"), maxiter=50 * len(rhs))[0]


@register("gradmatch", family="gradient_matching", weigher=gradmatch_weights,
          paper="Killamsetty et al. 2021, GRAD-MATCH (ICML); DeepCore",
          params={"grads": Choice(GRADS), "lam": POSITIVE, "max_ratio": MAX_RATIO,
                  "max_block_bytes": Int(0)},
          cost=Cost("a global OMP of k = max_ratio N picks, O(k N (C + D) + k^2 N) time and an "
                    "N x k float64 factor (bias gradients: O(k N C))",
                    global_only(_gradmatch_cost)))
def gradmatch(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
    grads: str = "full_last_layer", lam: float = 1.0, max_ratio: float = 1.0,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> np.ndarray:
    """GRAD-MATCH order: the picks of regularised OMP matching the gradient sum of each class
    (balanced, DeepCore's default) or of all data, lam = 1 as DeepCore.

    Full last-layer gradients use :func:`omp_order_dual` (O(n k^2), O(n k) memory: fine per class,
    heavy for a global selection at large ``max_ratio``); bias gradients use the primal
    :func:`omp_order_primal` (O(k n C)). DeepCore's OMP skips the ridge at its first pick
    (x = <a, b> / <a, a>), which can change the second pick; we regularise every step, as the
    objective does. The weigher (:func:`gradmatch_weights`) re-solves the weights on the final
    selection; samples it gives weight 0 are dropped from the kept list
    (:meth:`~coreset.scores.registry.SelectorSpec.weigh`), so a run keeps at most the budget.
    """
    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        length = greedy_length(len(idx), max_ratio)
        if grads == "bias":
            order = omp_order_primal(ctx.bias_grads(idx).astype(np.float64), length, lam,
                                     show=not balance)
        else:
            order = omp_order_dual(grad_embedding(ctx, grads, idx), length, lam, max_block_bytes,
                                   show=not balance)
        return order

    return class_orders(ctx.labels, balance, greedy, rng, desc="gradmatch")


# ----------------------------------------------------------------------------- GLISTER


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax of a float32 array, in place (this runs once per GLISTER pick)."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def glister_order(b: np.ndarray, h: np.ndarray | None, val_logits: np.ndarray,
                  val_onehot: np.ndarray, val_h: np.ndarray | None, length: int, eta: float,
                  show: bool = False) -> np.ndarray:
    """GLISTER-ONLINE greedy (Killamsetty et al. 2021) with the Taylor approximation, as DeepCore.

    Gain of j: <g_j, grad L_val(theta_S)>, the first-order decrease of the validation loss after
    a step along -g_j; theta_S is the last layer after one SGD step of size ``eta`` along the MEAN
    gradient of the picks so far (DeepCore's update), so the validation gradient is recomputed
    after EVERY pick. DeepCore never does (``upadate_state=`` typo), which makes its order a plain
    top-k of the initial gains. Gains change with every pick (not submodular), so the greedy is
    exact (naive), not lazy. ``h`` / ``val_h`` None: bias only.

    Time per pick O((n + n_val) C D) (skinny matrix products), memory O((n + n_val) (C + D)). The
    logit update through h is kept incrementally: sum_S (H_val h_s) b_s^T, O(n_val D) per pick.
    """
    b, val_onehot = b.astype(np.float32), val_onehot.astype(np.float32)
    val_ht = None if val_h is None else np.ascontiguousarray(val_h.T, dtype=np.float32)
    val_b, val_wt = _val_gradient(val_logits, val_onehot, val_ht)
    sum_b = np.zeros(b.shape[1])
    shift = np.zeros(val_logits.shape)  # H_val (sum_S b_s h_s^T)^T
    taken = np.zeros(len(b), dtype=bool)
    order = np.empty(length, dtype=np.int64)
    for t in tqdm(range(length), desc="glister", leave=False, disable=not show or None):
        direction = val_b if h is None else val_b + h @ val_wt  # (C,) or (n, C)
        gain = b @ direction if h is None else np.einsum("ic,ic->i", b, direction)
        gain[taken] = -np.inf
        j = int(np.argmax(gain))
        order[t], taken[j] = j, True
        if t + 1 == length:
            break
        sum_b += b[j]
        if h is not None:
            shift += np.outer(val_h @ h[j], b[j])
        logits = val_logits - eta / (t + 1) * (sum_b + shift)
        val_b, val_wt = _val_gradient(logits, val_onehot, val_ht)
    return order


def _val_gradient(logits: np.ndarray, onehot: np.ndarray,
                  ht: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean last-layer gradient of the val set: bias part (C,), weight part transposed (D, C)."""
    g = _softmax(logits.astype(np.float32)) - onehot
    return g.mean(axis=0), None if ht is None else ht @ g / len(g)


def _validation_indices(n: int, validation: str, fraction: float,
                        rng: np.random.Generator) -> np.ndarray:
    if validation == "train":
        return np.arange(n)
    return np.sort(rng.choice(n, size=max(1, round(fraction * n)), replace=False))


@register("glister", family="gradient_matching",
          paper="Killamsetty et al. 2021, GLISTER (AAAI); DeepCore",
          params={"grads": Choice(GRADS), "validation": Choice(VALIDATION),
                  "holdout_fraction": Float(0.0, 1.0, open_low=True), "eta": Float(0.0),
                  "max_ratio": MAX_RATIO},
          cost=Cost("a global GLISTER of k = max_ratio N picks, each O(N C D) (bias gradients: "
                    "O(N C))", global_only(lambda n, c, d, p: (
                        2.0 * length(n, p) * 2 * n * c * (d if p["grads"] != "bias" else 1),
                        8.0 * n * (c + d)))))
def glister(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
    grads: str = "full_last_layer", validation: str = "train", holdout_fraction: float = 0.1,
    eta: float = 0.1, max_ratio: float = 1.0,
) -> np.ndarray:
    """GLISTER-ONLINE order (:func:`glister_order`), per class when balanced (DeepCore's default).

    ``validation="train"``: the training set is its own validation set (DeepCore's default when no
    validation set is given); ``"holdout"``: a seeded ``holdout_fraction`` of the training set
    (its samples stay candidates; per class, a class without holdout samples uses its own).
    ``eta`` = DeepCore's default (its training lr, 0.1). The initial logits are log(probs) of the
    first model (softmax-equivalent). DeepCore differentiates its mean-reduced
    ``nn.CrossEntropyLoss`` of the logits, so each per-sample gradient is (softmax - onehot)
    divided by the size of its batch (``selection_batch``; the smaller last batch is inflated); we
    use softmax - onehot, as everywhere in this package. ``eta`` = 0 freezes the model (the order
    is then DeepCore's actual top-k of the initial gains).
    Time O(k (n_c + n_val,c) C D) per class for k = ceil(max_ratio n_c); a global selection costs
    O(k N C D): keep ``balance`` for large N.
    """
    val = _validation_indices(ctx.n, validation, holdout_fraction, rng)
    full = grads == "full_last_layer"

    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # the class's validation samples: its members among ``val`` (a label test, O(len(val))
        # per class; np.isin would sort N values for each of C classes)
        v = val[ctx.labels[val] == ctx.labels[idx[0]]] if balance else val
        v = v if len(v) else idx
        order = glister_order(
            ctx.bias_grads(idx), ctx.features[idx] if full else None,
            np.log(np.maximum(ctx.probs[0, v], 1e-30)), ctx.onehot(v),
            ctx.features[v] if full else None, greedy_length(len(idx), max_ratio), eta,
            show=not balance,
        )
        return order

    return class_orders(ctx.labels, balance, greedy, rng, desc="glister")
