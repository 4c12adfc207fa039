"""Decision-boundary selectors: DeepFool (adversarial distance) and CAL (contrastive kNN).

Both keep the samples nearest to the decision boundary: DeepFool measures it in input space with
the model's gradients; CAL measures how much a sample's prediction disagrees with its neighbours'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from coreset.scores.context import ModelAccess, ScoringContext
from coreset.scores.greedy import map_classes
from coreset.scores.params import BATCH_SIZE, Choice, Float, Int
from coreset.scores.registry import register
from coreset.scores.scale import KNN

if TYPE_CHECKING:  # torch is imported lazily: the registry loads this module for CAL too
    from torch import Tensor
    from torch.nn import Module

_EPS = 1e-8  # probability floor: softmax outputs underflow to 0 and log(0) = -inf
DIVERGENCES = ("kl", "symmetric")


# ---------------------------------------------------------------------------------------------
# DeepFool


def _candidate_classes(logits: Tensor, candidates: int) -> Tensor:
    """(B, K) class ids sorted by original logit, the predicted class first."""
    import torch

    order = torch.sort(logits, dim=1, descending=True, stable=True).indices
    k = logits.shape[1] if candidates <= 0 else min(candidates, logits.shape[1])
    return order[:, :k]


def _deepfool_step(model: Module, x: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
    """One linearised DeepFool step for samples ``x`` (B, ...) with candidate classes ``cls``.

    Returns (r, ok): the minimal step to the nearest linearised boundary between the original
    class cls[:, 0] and another candidate, with Moosavi-Dezfooli's 1e-4 push past it, and a bool
    (B,) telling which samples had any boundary to move towards (a nonzero gradient difference).
    """
    import torch

    x = x.detach().requires_grad_(True)
    f = model(x).gather(1, cls)  # (B, K) candidate logits
    # Samples are independent in eval mode, so d(sum_b f[b, j]) / dx[b] = df[b, j] / dx[b].
    grads = torch.stack([
        torch.autograd.grad(f[:, j].sum(), x, retain_graph=j + 1 < f.shape[1])[0].flatten(1)
        for j in range(f.shape[1])
    ], dim=1)  # (B, K, P)
    w = grads[:, 1:] - grads[:, :1]  # (B, K-1, P)
    fd = (f[:, 1:] - f[:, :1]).detach().abs()  # (B, K-1)
    wn = w.norm(dim=2)
    dist = torch.where(wn > 0, fd / wn.clamp_min(1e-30), torch.full_like(fd, float("inf")))
    best = dist.argmin(dim=1)
    rows = torch.arange(len(x), device=x.device)
    ok = torch.isfinite(dist[rows, best])
    scale = torch.where(ok, (fd[rows, best] + 1e-4) / wn[rows, best].clamp_min(1e-30) ** 2, 0.0)
    return (scale[:, None] * w[rows, best]).reshape(x.shape), ok


def deepfool_perturbation(
    model: Module, x: Tensor, *, max_iter: int, overshoot: float, candidates: int
) -> tuple[Tensor, Tensor]:
    """Multi-class DeepFool (Moosavi-Dezfooli et al. 2016, Alg. 2) on every sample of a batch.

    From x_0, repeatedly step to the nearest linearised boundary between the original class k
    and another candidate class l, r_i = (|f_l - f_k| + 1e-4) / ||w_l - w_k||^2 (w_l - w_k),
    x_{i+1} = x_0 + (1 + overshoot) r_tot, until the prediction changes or ``max_iter`` steps.
    Returns (r, stuck): the perturbation (1 + overshoot) r_tot, shaped like ``x``, and a bool (B,)
    for samples with no boundary to move towards (every gradient difference zero). Samples leave
    the batch as soon as they flip. Time: up to max_iter * K backward passes of the batch
    (K candidate classes); memory O(B K P) for the input gradients.
    """
    import torch

    x0 = x.detach()
    with torch.no_grad():
        cls = _candidate_classes(model(x0), candidates)
    r_tot = torch.zeros_like(x0)
    stuck = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    if cls.shape[1] < 2:
        return r_tot, ~stuck
    ia = torch.arange(len(x0), device=x0.device)
    for it in range(max_iter):
        xa = x0[ia] + (1 + overshoot) * r_tot[ia]
        if it > 0:  # drop the samples whose prediction already changed
            with torch.no_grad():
                keep = model(xa).argmax(dim=1) == cls[ia, 0]
            ia, xa = ia[keep], xa[keep]
        if len(ia) == 0:
            break
        r, ok = _deepfool_step(model, xa, cls[ia])
        r_tot[ia] += r
        stuck[ia[~ok]] = True
        ia = ia[ok]
    return (1 + overshoot) * r_tot, stuck


def deepfool_norms(
    model: Module, x: Tensor, *, max_iter: int, overshoot: float, candidates: int
) -> Tensor:
    """L2 norm of the DeepFool perturbation of every sample in the batch ``x``, float64 (B,).

    +inf for a sample with no boundary to move towards. For a linear model one step lands just
    past the closest boundary, so the norm is the exact distance times (1 + overshoot) (plus
    the 1e-4 push). Samples that have not flipped after ``max_iter`` steps keep the norm of the
    accumulated perturbation, as in DeepCore.
    """
    import torch

    r, stuck = deepfool_perturbation(model, x, max_iter=max_iter, overshoot=overshoot,
                                     candidates=candidates)
    norm = r.flatten(1).double().norm(dim=1)
    return torch.where(stuck, float("inf"), norm)


def deepfool_distances(
    access: ModelAccess,
    *,
    model_index: int = 0,
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int = 0,
    batch_size: int = 128,
) -> np.ndarray:
    """DeepFool perturbation norm for every training sample, in ``access.batches`` order. (N,)."""
    model = access.models[model_index]
    was_training = model.training
    model.eval()  # BatchNorm statistics must not depend on the batch, nor be updated
    out = []
    try:
        for x, _, _ in tqdm(access.batches(batch_size), desc="deepfool", leave=False,
                            disable=None):
            norms = deepfool_norms(model, x, max_iter=max_iter, overshoot=overshoot,
                                   candidates=candidates)
            out.append(norms.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


@register(
    "deepfool", family="boundary", needs_model=True,
    paper="Moosavi-Dezfooli et al. 2016 (DeepFool); Ducoffe & Precioso 2018; DeepCore",
    params={"max_iter": Int(1), "overshoot": Float(0.0), "candidates": Int(0, exclude=(1,)),
            "batch_size": BATCH_SIZE},
)
def deepfool(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int = 0,
    batch_size: int = 128,
) -> np.ndarray:
    """DeepFool selector (Ducoffe & Precioso 2018 as in DeepCore): keep the samples with the
    smallest adversarial perturbation, i.e. the closest to the decision boundary.

    Score = -||r|| of the multi-class DeepFool perturbation on the first pretrained model, so
    the default window ``top`` keeps the smallest. ``candidates`` > 0 limits the boundaries
    searched to the top-``candidates`` classes of the original logits (the original DeepFool
    code uses 10); 0 = all classes (DeepCore).

    Differences from DeepCore's code: it steps x += r_i without overshoot or the 1e-4 push,
    so a sample can sit exactly on a boundary without flipping and keep iterating; we follow the
    DeepFool paper (overshoot, default 0.02). DeepCore ranks by ||r||^2; we use -||r||, the same
    order. A sample with no boundary to move towards scores the lowest finite float: every
    sample is ranked, so any ratio and window is served. Time O(N * iterations * K backward
    passes); memory O(batch * K * input size).
    """
    if ctx.model is None:
        raise ValueError("deepfool needs the pretrained model (ctx.model)")
    norms = deepfool_distances(ctx.model, max_iter=max_iter, overshoot=overshoot,
                               candidates=candidates, batch_size=batch_size)
    # No boundary to move towards (every gradient difference zero): infinitely far, so ranked
    # below every finite distance. A finite floor, because -inf means "not ranked" to select.
    return np.where(np.isinf(norms), -np.finfo(np.float64).max, -norms)


# ---------------------------------------------------------------------------------------------
# CAL


def _knn(features: np.ndarray, k: int) -> np.ndarray:
    """(n, k') indices of each row's k nearest other rows (k' = min(k, n - 1)), Euclidean.

    scikit-learn computes the distances in chunks (``working_memory``), never n x n.
    """
    n = len(features)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    from sklearn.neighbors import NearestNeighbors  # lazy: keeps `import coreset` fast

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(features)
    idx = nn.kneighbors(features, return_distance=False)
    # Drop each row's own index; with duplicate points it may not come first, so drop by value
    # and fall back to dropping the last column when the point itself was not returned.
    is_self = idx == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return idx[~is_self].reshape(n, k)


def neighbour_divergence(
    probs: np.ndarray, knn: np.ndarray, divergence: str, block: int = 4096
) -> np.ndarray:
    """Mean divergence between each sample's prediction and its neighbours' predictions.

    ``divergence="kl"``: mean_j KL(p_j || p_i) over neighbours j (Margatina et al. 2021, Eq. 1:
    the neighbour's distribution first); ``"symmetric"``: mean_j 0.5 KL(p_i || p_j) +
    0.5 KL(p_j || p_i) (DeepCore's code). O(n k C) time, O(block k C) extra memory.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r}: allowed values are {', '.join(DIVERGENCES)}")
    p = np.clip(probs.astype(np.float64), _EPS, None)
    p /= p.sum(axis=1, keepdims=True)
    logp = np.log(p)
    out = np.zeros(len(p))
    if knn.shape[1] == 0:
        return out
    for s in range(0, len(p), block):
        nb, pi, li = knn[s:s + block], p[s:s + block, None], logp[s:s + block, None]
        pj, lj = p[nb], logp[nb]  # (B, k, C)
        kl_ji = (pj * (lj - li)).sum(axis=2)
        if divergence == "symmetric":
            kl_ji = 0.5 * kl_ji + 0.5 * (pi * (li - lj)).sum(axis=2)
        out[s:s + block] = kl_ji.mean(axis=1)
    return out


@register(
    "cal", family="boundary", balance=True,
    paper="Margatina et al. 2021, Contrastive active learning (CAL); DeepCore",
    params={"neighbors": Int(1), "divergence": Choice(DIVERGENCES)}, cost=KNN,
)
def cal(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    neighbors: int = 10,
    divergence: str = "symmetric",
) -> np.ndarray:
    """Contrastive Active Learning (Margatina et al. 2021), as DeepCore's ``Cal``.

    For each sample, its ``neighbors`` nearest neighbours (Euclidean) in the penultimate feature
    space, within its class when ``balance`` (DeepCore's default) else among all samples; the
    score is the mean divergence between the first pretrained model's softmax outputs of the
    sample and of its neighbours. The default window ``top`` keeps the HIGHEST divergence (the
    samples whose prediction contradicts their neighbourhood, i.e. near the boundary).

    ``divergence``: DeepCore's code uses the symmetric 0.5 KL(p_i||p_j) + 0.5 KL(p_j||p_i)
    (default, per docs/PROTOCOL.md: the code's choice); ``"kl"`` is the paper's KL(p_neighbour ||
    p_sample). Differences from DeepCore: DeepCore keeps the LOWEST divergence (a bug, see
    docs/PROTOCOL.md) and takes the neighbours in the embedding of an ImageNet-pretrained ResNet-18
    at 224 px; we use the features of our pretrained model, so the selector needs no extra
    network or download. Probabilities are floored at 1e-8 (DeepCore: nan on zeros).
    Time O(sum_c n_c^2 D) for the kNN (O(N^2 D) unbalanced), memory O(N k) plus scikit-learn's
    chunked distance blocks; never N x N.
    """
    def one(idx: np.ndarray) -> np.ndarray:
        knn = _knn(ctx.features[idx].astype(np.float64), neighbors)
        return neighbour_divergence(ctx.probs[0, idx], knn, divergence)

    if not balance:  # one kNN search over all samples: BLAS keeps its threads
        return one(np.arange(ctx.n))
    # classes run in threads on single-threaded BLAS, like the greedy selectors: 1,000 small kNN
    # searches gain nothing from threaded BLAS, and ran on one core otherwise
    groups = [np.flatnonzero(ctx.labels == c) for c in np.unique(ctx.labels)]
    score = np.zeros(ctx.n)
    for idx, part in zip(groups, map_classes(one, groups, desc="cal"), strict=True):
        score[idx] = part
    return score
