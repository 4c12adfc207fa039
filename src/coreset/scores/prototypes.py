"""Prototype / diversity selectors: Contextual Diversity (greedy) and self-supervised prototypes.

Both keep O(N) working memory (a few (N,) or (N, C) / (N, D) arrays); nothing is N x N.
"""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext, row_blocks
from coreset.scores.greedy import class_orders, greedy_length
from coreset.scores.params import MAX_RATIO, Bool, Int
from coreset.scores.registry import register
from coreset.scores.scale import Cost, global_only, length

_EPS = 1e-8  # floor for probabilities: softmax outputs underflow to 0, and log(0) would be -inf


class _SymmetricKL:
    """Distances d(p_j, p_i) = 0.5 KL(p_j || p_i) + 0.5 KL(p_i || p_j) from one sample to all.

    Expanding the logs, d = 0.5 (e_j + e_i - p_j . log p_i - p_i . log p_j) with
    e = sum p log p, so one row costs two (N, C) x (C,) products: O(N C) time, no (N, C)
    temporaries and no N x N matrix.
    """

    def __init__(self, probs: np.ndarray) -> None:
        p = np.clip(probs.astype(np.float64), _EPS, None)
        self.p = p / p.sum(axis=1, keepdims=True)
        self.logp = np.log(self.p)
        self.negent = np.einsum("ij,ij->i", self.p, self.logp)

    def row(self, j: int) -> np.ndarray:
        cross = self.logp @ self.p[j] + self.p @ self.logp[j]
        return np.maximum(0.5 * (self.negent + self.negent[j] - cross), 0.0)


def contextual_diversity_order(probs: np.ndarray, length: int, first: int) -> np.ndarray:
    """k-Center Greedy under the symmetric-KL distance of softmax outputs, first pick ``first``.

    Keeps one (n,) vector of distances to the nearest chosen centre (DeepCore keeps a
    budget x N matrix). O(length * n * C) time, O(n C) memory.
    """
    dist = _SymmetricKL(probs)
    order = np.empty(length, dtype=np.int64)
    order[0] = first
    nearest = dist.row(first)
    nearest[first] = -np.inf
    for t in range(1, length):
        j = int(np.argmax(nearest))
        order[t] = j
        np.minimum(nearest, dist.row(j), out=nearest)
        nearest[j] = -np.inf  # chosen centres are never picked again, even at distance-0 ties
    return order


@register(
    "contextual_diversity", family="geometry",
    paper="Agarwal et al. 2020, Contextual diversity for active learning (ECCV); DeepCore",
    params={"max_ratio": MAX_RATIO},
    cost=Cost("k = max_ratio N greedy steps over the N x C softmax outputs (two float64 copies), "
              "O(k N C)", global_only(lambda n, c, d, p: (4.0 * length(n, p) * n * c,
                                                          8.0 * n * c))),
)
def contextual_diversity(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, max_ratio: float = 1.0
) -> np.ndarray:
    """Contextual Diversity as DeepCore implements it (Agarwal et al. 2020).

    Greedy k-center on the pairwise contextual-diversity distance of the first pretrained
    model's softmax outputs, d(a, b) = 0.5 KL(a || b) + 0.5 KL(b || a); per class when
    ``balance`` (DeepCore's default), else over all samples. The first centre of each greedy is a
    seeded random sample, as in DeepCore. The greedy runs for ceil(max_ratio * n) picks; samples
    it never reached score -inf, so ``max_ratio`` must be at least the selection ratio.

    Differences from DeepCore: DeepCore allocates a budget x N distance matrix and returns an
    unordered set; we keep a running (N,) min-distance vector and return the greedy order (so any
    prefix is the DeepCore selection at that budget). We floor probabilities at 1e-8 where
    DeepCore would produce nan for a zero probability. Agarwal et al.'s full method weights the
    KL by class-conditional region statistics; DeepCore (and we) use the plain softmax outputs.

    Time O(max_ratio * n_c^2 * C) summed over classes (n_c = class size, or N when unbalanced);
    memory O(N C).
    """
    probs = ctx.probs[0]

    def greedy(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        first = int(rng.integers(len(idx)))
        return contextual_diversity_order(probs[idx], greedy_length(len(idx), max_ratio), first)

    return class_orders(ctx.labels, balance, greedy, rng, desc="contextual_diversity")


# scikit-learn's KMeans (Lloyd, whole passes over the data) runs while N k D is at most this
# (CIFAR-100 x 512 features: 2.6e9); above it (ImageNet: 1.28M x 1000 x 512 = 6.6e11, about 30 s
# per Lloyd pass on 2 cores, times tens of passes and n_init) MiniBatchKMeans runs instead
FULL_KMEANS_MAX = 1 << 36
MINIBATCH = 4096  # MiniBatchKMeans batch size above FULL_KMEANS_MAX


def nearest_prototype_distance(
    features: np.ndarray, n_clusters: int, normalize: bool, seed: int, n_init: int
) -> np.ndarray:
    """k-means on ``features``; each sample's distance to its nearest centroid.

    ``normalize``: L2-normalise the features and use the cosine distance 1 - cos(x, c) to the
    most similar centroid (Sorscher et al.'s choice); otherwise the Euclidean distance.
    O(n_init * iterations * N k D) time, O(N (D + k)) memory. Above ``FULL_KMEANS_MAX`` = N k D,
    :func:`_minibatch_distance` (printed).
    """
    n, d = features.shape
    if n * n_clusters * d > FULL_KMEANS_MAX:
        print(f"self_sup_prototypes: N k D = {n * n_clusters * d:.2g} > {FULL_KMEANS_MAX:.2g}: "
              f"MiniBatchKMeans (batch {MINIBATCH}) instead of KMeans")
        return _minibatch_distance(features, n_clusters, normalize, seed, n_init)
    x = features.astype(np.float64)
    if normalize:
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    from sklearn.cluster import KMeans  # lazy: keeps `import coreset` fast

    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(x)
    if not normalize:
        return km.transform(x).min(axis=1)
    c = km.cluster_centers_
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return 1.0 - (x @ c.T).max(axis=1)


def _minibatch_distance(features: np.ndarray, k: int, normalize: bool, seed: int,
                        n_init: int) -> np.ndarray:
    """The same score with MiniBatchKMeans (Sculley 2010), as large-scale prototype pipelines
    cluster (Sorscher et al. used faiss k-means on ImageNet), on float32 features: one (N, D)
    float32 copy, then distances to the centroids in row blocks of (rows, k). Time
    O(steps * batch * k D + N k D); memory O(N D) float32."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.empty(features.shape, dtype=np.float32)
    for rows in row_blocks(len(x), 8 * x.shape[1]):
        x[rows] = features[rows]
        if normalize:
            x[rows] /= np.maximum(np.linalg.norm(x[rows], axis=1, keepdims=True), 1e-12)
    km = MiniBatchKMeans(n_clusters=k, batch_size=MINIBATCH, n_init=n_init, random_state=seed,
                         compute_labels=False).fit(x)
    c = km.cluster_centers_.astype(np.float64)
    if normalize:
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(x))
    sq_c = np.einsum("kd,kd->k", c, c)
    for rows in row_blocks(len(x), 8 * k):
        xc = x[rows].astype(np.float64) @ c.T
        if normalize:
            out[rows] = 1.0 - xc.max(axis=1)
        else:
            sq_x = np.einsum("id,id->i", x[rows], x[rows], dtype=np.float64)
            out[rows] = np.sqrt(np.maximum(sq_x[:, None] - 2 * xc + sq_c, 0).min(axis=1))
    return out


@register(
    "self_sup_prototypes", family="geometry", window="top", balance=False,
    paper="Sorscher et al. 2022, Beyond neural scaling laws (self-supervised prototypes)",
    params={"n_clusters": Int(0), "normalize": Bool(), "n_init": Int(1)},
)
def self_sup_prototypes(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    n_clusters: int = 0,
    normalize: bool = True,
    n_init: int = 3,
) -> np.ndarray:
    """Self-supervised prototype metric (Sorscher et al. 2022), as the Moderate paper ran it.

    k-means with k = ``n_clusters`` (0 = the number of classes) on the penultimate features; the
    score is the distance to the nearest centroid, and the default window ``top`` keeps the
    farthest ("hardest") samples, Sorscher et al.'s rule for large budgets. Labels are not used.

    Differences: Sorscher et al. cluster SwAV embeddings of an ImageNet self-supervised model
    with faiss; we cluster the features of the pretrained model (what the Moderate paper's
    baseline had) with scikit-learn's KMeans, seeded from ``rng``. O(n_init * iter * N k D)
    time, O(N (D + k)) memory.
    """
    k = n_clusters or ctx.num_classes
    seed = int(rng.integers(2**31 - 1))
    return nearest_prototype_distance(ctx.features, k, normalize, seed, n_init)
