"""Geometry-based selectors on the penultimate features: Moderate-DS, Herding, k-Center Greedy.

Everything works per class or on running (N,) vectors: memory is O(N D), never N x N.
"""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.greedy import class_orders, greedy_length
from coreset.scores.params import MAX_RATIO, Choice
from coreset.scores.registry import register
from coreset.scores.scale import FEATURE_GREEDY

CENTERS = ("median", "mean")


def distance_to_class_center(features: np.ndarray, labels: np.ndarray, center: str) -> np.ndarray:
    """Euclidean distance of each sample to the median or mean feature of its class. O(N D)."""
    if center not in CENTERS:
        raise ValueError(f"center={center!r}: allowed values are {', '.join(CENTERS)}")
    reduce = np.median if center == "median" else np.mean
    dist = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = labels == c
        x = features[idx].astype(np.float64)
        dist[idx] = np.linalg.norm(x - reduce(x, axis=0), axis=1)
    return dist


@register(
    "moderate", family="geometry", window="moderate", balance=False,
    paper="Xia et al. 2023, Moderate coreset (ICLR)", params={"center": Choice(CENTERS)},
)
def moderate(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, center: str = "median"
) -> np.ndarray:
    """Moderate-DS: distance of each feature to its class centre (Xia et al. 2023).

    The paper says the class mean; the reference code uses the coordinate-wise median, which is
    our default (``center``). With the default window ``moderate`` and global (unbalanced)
    selection, the kept samples are the ascending ranks [round(N (0.5 - r/2)), round(N (0.5 + r/2)))
    of all distances, with the reference's rounding (``selection.moderate_band``), so the kept set
    is the reference's exactly (ties aside: the reference's unstable argsort orders tied
    distances arbitrarily, ours by index). The windows bottom / top / two-ends give the paper's
    Fig. 3 ablation. O(N D).
    """
    return distance_to_class_center(ctx.features, ctx.labels, center)


def herding_order(x: np.ndarray, length: int) -> np.ndarray:
    """Greedy herding (Welling 2009; Chen et al. 2010): each step adds the point that brings the
    running mean of the selected points closest to the mean of all points.

    With S the sum of t selected points and mu the mean, the next point minimises
    ||mu - (S + x)/(t + 1)|| = ||a - x|| / (t + 1) with a = (t + 1) mu - S, i.e. the argmin of
    ||x||^2 - 2 a.x. DeepCore takes the argmax of that distance (a bug); we take the argmin.
    O(length * n * D) time, O(n D) memory.
    """
    x = x.astype(np.float64)
    mu = x.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    taken = np.zeros(len(x), dtype=bool)
    total = np.zeros_like(mu)
    order = np.empty(length, dtype=np.int64)
    for t in range(length):
        cost = sq - 2.0 * (x @ ((t + 1) * mu - total))
        cost[taken] = np.inf
        j = int(np.argmin(cost))
        order[t], taken[j] = j, True
        total += x[j]
    return order


@register("herding", family="geometry", paper="Welling 2009; Chen et al. 2010; DeepCore",
          params={"max_ratio": MAX_RATIO}, cost=FEATURE_GREEDY)
def herding(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, max_ratio: float = 1.0
) -> np.ndarray:
    """Herding order on the features, per class when balanced (DeepCore's default), of length
    ceil(max_ratio n_c) (:func:`~coreset.scores.greedy.greedy_length`). O(length n_c D) per class.
    """
    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return herding_order(ctx.features[idx], greedy_length(len(idx), max_ratio))

    return class_orders(ctx.labels, balance, greedy, rng, desc="herding")


def kcenter_order(x: np.ndarray, length: int, first: int) -> np.ndarray:
    """k-Center Greedy (Sener & Savarese 2018): repeatedly add the point farthest from the chosen
    centres. Keeps one (n,) vector of distances to the nearest centre, so memory is O(n D), not
    DeepCore's budget x N matrix. O(length * n * D) time. The 2-approximation of the k-center
    radius holds for every prefix of the order.
    """
    x = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)

    def sq_dist(j: int) -> np.ndarray:
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matrix-vector product, no (n, D) temporary
        return np.maximum(sq - 2.0 * (x @ x[j]) + sq[j], 0.0)

    order = np.empty(length, dtype=np.int64)
    order[0] = first
    nearest = sq_dist(first)  # squared distances: same argmax, no square roots
    nearest[first] = -1.0
    for t in range(1, length):
        j = int(np.argmax(nearest))
        order[t] = j
        np.minimum(nearest, sq_dist(j), out=nearest)
        nearest[j] = -1.0  # chosen centres must never be picked again, even at distance 0 ties
    return order


@register("kcenter", family="geometry", paper="Sener & Savarese 2018, core-set; DeepCore",
          params={"max_ratio": MAX_RATIO}, cost=FEATURE_GREEDY)
def kcenter(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, max_ratio: float = 1.0
) -> np.ndarray:
    """k-Center Greedy order on the features, per class when balanced; the first centre is a
    seeded random sample (drawn from the class's own generator). O(length n_c D) per class."""
    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        first = int(rng.integers(len(idx)))
        return kcenter_order(ctx.features[idx], greedy_length(len(idx), max_ratio), first)

    return class_orders(ctx.labels, balance, greedy, rng, desc="kcenter")

