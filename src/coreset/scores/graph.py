"""D2 pruning (Maharana et al. ICLR 2024): message passing on a kNN graph of the features.

The graph is sparse (k neighbours per sample, symmetrised: about 2 k N edges), built per class or
over all samples with scikit-learn's NearestNeighbors, which computes distances in blocks, so
memory is O(N k + N D), never N x N.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from coreset.scores.context import ScoringContext
from coreset.scores.coverage import (
    CUT_BY,
    CUT_SCOPE,
    DIFFICULTY,
    NEVER_LEARNED,
    difficulty,
    hard_cut_drop,
)
from coreset.scores.greedy import class_orders, greedy_length
from coreset.scores.params import MAX_RATIO, POSITIVE, Choice, Float, Int
from coreset.scores.registry import register
from coreset.scores.scale import KNN

EPS = 1e-7  # the reference's floor on a neighbour's importance in the forward pass


def knn_graph(x: np.ndarray, k: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Symmetric kNN graph: i ~ j when j is among the k nearest neighbours of i or i among j's
    (the reference's symmetrisation). Returns the adjacency (CSR, sorted indices) and the
    Euclidean length of each of its stored edges, computed in blocks. O(N k D)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    k = min(k, n - 1)
    _, nbr = NearestNeighbors(n_neighbors=k).fit(x).kneighbors()  # excludes each point itself
    rows = np.repeat(np.arange(n), k)
    adj = sparse.csr_matrix((np.ones(n * k), (rows, nbr.ravel())), shape=(n, n))
    adj = adj.maximum(adj.T).tocsr()
    adj.sort_indices()
    src = np.repeat(np.arange(n), np.diff(adj.indptr))
    lengths = np.empty(adj.nnz)
    for s in range(0, adj.nnz, 65536):  # no (edges, D) temporary
        e = slice(s, s + 65536)
        lengths[e] = np.linalg.norm(x[src[e]] - x[adj.indices[e]], axis=1)
    return adj, lengths


def forward_pass(adj: sparse.csr_matrix, lengths: np.ndarray, importance: np.ndarray,
                 gamma: float) -> np.ndarray:
    """s_i + sum over neighbours j of exp(-gamma d_ij) max(s_j, eps): a sample's importance plus
    that of its neighbourhood (the reference's ``graph_mode: sum``)."""
    weights = sparse.csr_matrix((np.exp(-gamma * lengths), adj.indices, adj.indptr),
                                shape=adj.shape)
    return importance + weights @ np.maximum(importance, EPS)


def reverse_order(adj: sparse.csr_matrix, lengths: np.ndarray, density: np.ndarray,
                  gamma: float, length: int) -> np.ndarray:
    """Greedy: take the highest density, then lower each neighbour j's density by
    exp(-gamma d_ij) times the taken one's (reverse message passing, the reference's
    ``graph_sampling_mode: weighted``), so that its neighbourhood is not taken twice. Ties go to
    the lower index. O(length * N + edges)."""
    density = density.astype(np.float64).copy()
    order = np.empty(length, dtype=np.int64)
    for t in range(length):
        i = int(np.argmax(density))
        order[t] = i
        nbr = slice(adj.indptr[i], adj.indptr[i + 1])
        density[adj.indices[nbr]] -= np.exp(-gamma * lengths[nbr]) * density[i]
        density[i] = -np.inf
    return order


@register("d2", family="graph", paper="Maharana et al. 2024, D2 pruning (ICLR)",
          params={"score": Choice(DIFFICULTY), "neighbors": Int(1), "gamma": POSITIVE,
                  "forward_gamma": POSITIVE, "hard_cut": Float(0.0, 1.0, open_high=True),
                  "cut_by": Choice(CUT_BY), "cut_scope": Choice(CUT_SCOPE),
                  "never_learned": Choice(NEVER_LEARNED), "max_ratio": MAX_RATIO}, cost=KNN)
def d2(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
       score: str = "forgetting", neighbors: int = 5, gamma: float = 0.1,
       forward_gamma: float = 1.0, hard_cut: float = 0.0, cut_by: str = "aum",
       cut_scope: str = "global", never_learned: str = "zero",
       max_ratio: float = 1.0) -> np.ndarray:
    """D2 pruning order on the penultimate features, per class when balanced (the reference's
    ``--label-balanced``). Importance = the difficulty ``score`` (forgetting by default, as the
    reference's CIFAR command, with never-learned samples at 0 events as its recorder counts
    them: ``never_learned``; AUM enters as max(AUM) - AUM so that it is >= 0, where the reference
    negates it to <= 0). Forward message passing with weights exp(-forward_gamma d) (the
    reference's exp(-d)), then greedy selection with reverse message passing exp(-gamma d).
    Defaults: k = 5 neighbours, gamma = 0.1, from the reference's README.

    Hard cut: before the graph, the ``hard_cut`` fraction hardest by ``cut_by`` (``aum``: lowest
    AUM, the reference's ``--mis-key accumulated_margin``; ``score``: the importance itself) is
    dropped (unranked, -inf), over all samples (``cut_scope: global``, the reference's
    ``mislabel_mask``) or per class. The reference's CIFAR command (``--coreset-mode class
    --mis-ratio 0.4``) is ``hard_cut: 0.4, cut_by: aum, cut_scope: global`` with ``balance:
    true``: cut the 40 % lowest-AUM samples of the whole training set, then run D2 inside each
    class on forgetting (its ``--stratas 25`` is not read in that mode). Deviation: the reference
    splits the budget equally over classes (CCS's ``bin_allocate``); ``select`` splits it in
    proportion to the class sizes and refuses a class whose cut left fewer than its share.

    Prefix-consistent order of length ceil(max_ratio n_c). O(n_c k D) for the graph +
    O(length n_c) for the greedy, per class.
    """
    hardness = difficulty(ctx, score, "d2", never_learned)
    importance = hardness - hardness.min() if score == "aum" else hardness
    dropped = hard_cut_drop(ctx, hardness, "d2", hard_cut, cut_by, cut_scope, balance)

    def order(idx: np.ndarray, group_rng: np.random.Generator) -> np.ndarray:
        keep = np.flatnonzero(~dropped[idx])
        if len(keep) < 2:
            return keep
        adj, lengths = knn_graph(ctx.features[idx[keep]].astype(np.float64), neighbors)
        density = forward_pass(adj, lengths, importance[idx[keep]], forward_gamma)
        length = min(len(keep), greedy_length(len(idx), max_ratio))
        return keep[reverse_order(adj, lengths, density, gamma, length)]

    return class_orders(ctx.labels, balance, order, rng, desc="d2")
