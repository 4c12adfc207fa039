"""Similarity kernels between samples, computed blockwise so that memory stays linear in N.

Used by the submodular functions (``submodular.py``) and by CRAIG / GRAD-MATCH
(``gradient_matching.py``). An :class:`Embedding` holds the vectors (features, or last-layer
gradients kept factored); a :class:`Similarity` turns them into a non-negative similarity (or the
raw Gram matrix), materialised as an n x n float32 block only when it fits ``max_block_bytes`` and
otherwise computed row by row. Similarities are computed in float64 and stored in float32, so the
materialised and the on-the-fly paths agree bit for bit (up to float32 rounding boundaries, which
float64 errors practically never cross).

Last-layer gradients are never materialised either: g = [b, b (x) h] with b = softmax - onehot and
h the penultimate feature, so <g_i, g_j> = <b_i, b_j> (1 + <h_i, h_j>) costs O(C + D), not O(C D).
:class:`IncrementalCholesky` factors a kernel one pivot at a time (log-determinant, OMP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coreset.scores.context import ScoringContext

SPACES = ("features", "gradients")
METRICS = ("cosine", "euclidean", "rbf")
DEFAULT_MAX_BLOCK_BYTES = 1 << 30  # a 16384 x 16384 float32 class block
TEMP_BYTES = 1 << 25  # float64 temporaries of one computed block of similarity rows


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Internal guard for direct calls (selector params are validated by the registry)."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: allowed values are {', '.join(allowed)}")


@dataclass(frozen=True)
class Embedding:
    """Vectors x_i whose inner products define a similarity, in float64.

    Either plain rows ``u`` (features, or bias gradients), or the factored last-layer gradient
    x_i = [u_i, u_i (x) h_i] when ``h`` is given, whose Gram matrix is (U U^T) * (1 + H H^T).
    """

    u: np.ndarray  # (n, p)
    h: np.ndarray | None = None  # (n, D)

    @property
    def n(self) -> int:
        return len(self.u)

    def gram_rows(self, rows: np.ndarray, cols: np.ndarray | slice = slice(None)) -> np.ndarray:
        """<x_r, x_c> for r in rows and c in cols (default all): O(len(rows) len(cols) (p + D))."""
        g = self.u[rows] @ self.u[cols].T
        if self.h is not None:
            hh = self.h[rows] @ self.h[cols].T
            hh += 1.0
            g *= hh
        return g

    def sqnorms(self) -> np.ndarray:
        sq = np.einsum("ij,ij->i", self.u, self.u)
        if self.h is not None:
            sq *= 1.0 + np.einsum("ij,ij->i", self.h, self.h)
        return sq

    def mean_inner(self) -> tuple[np.ndarray, float]:
        """(<x_i, mu> for every i, ||mu||^2) with mu the mean vector; O(n p D), never n x n."""
        mu_u = self.u.mean(axis=0)
        if self.h is None:
            return self.u @ mu_u, float(mu_u @ mu_u)
        mu_w = self.u.T @ self.h / self.n  # (p, D): the mean of u (x) h
        ip = self.u @ mu_u + np.einsum("id,id->i", self.u @ mu_w, self.h)
        return ip, float(mu_u @ mu_u + np.sum(mu_w * mu_w))


def embedding(ctx: ScoringContext, space: str, idx: np.ndarray) -> Embedding:
    """The vectors of samples ``idx`` that a similarity is computed on, from the first model.

    ``features``: penultimate features. ``gradients``: the closed-form gradient of the CE loss
    w.r.t. the last linear layer (bias and weight, as ``ctx.last_layer_grads``), DeepCore's
    choice, kept factored. ``bias_gradients``: softmax - onehot only (C dims), a cheaper proxy.
    O(len(idx) (C + D)) float64 memory.
    """
    _check_choice("space", space, (*SPACES, "bias_gradients"))
    if space == "features":
        return Embedding(ctx.features[idx].astype(np.float64))
    b = ctx.bias_grads(idx).astype(np.float64)
    return Embedding(b, ctx.features[idx].astype(np.float64) if space == "gradients" else None)


# ----------------------------------------------------------------------------- similarity


class Similarity:
    """Non-negative symmetric similarity s_ij on an :class:`Embedding` of n points.

    Metrics: ``cosine``: 0.5 + 0.5 cos (DeepCore's ``cossim_np``, in [0, 1]); ``euclidean``:
    M - ||x_i - x_j|| with M = 2 max_i ||x_i - mu|| >= every pairwise distance (CRAIG's
    d_max - d; DeepCore shifts by the exact max + 1e-3, which needs all n^2 distances: facility
    location orders do not depend on the shift); ``rbf``: exp(-||x_i - x_j||^2 / s2) with s2 the
    mean pairwise squared distance; ``dot``: the raw Gram matrix (for GradMatch, not
    non-negative). Rows are computed in float64 and returned in float32, from a materialised
    n x n float32 matrix when n^2 * 4 <= max_block_bytes (O(n^2 (p + D)) once), else on the fly
    (O(n (p + D)) per row). Memory: O(n^2) materialised, else O(rows * n).
    """

    def __init__(self, emb: Embedding, metric: str, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES):
        _check_choice("metric", metric, (*METRICS, "dot"))
        self.emb, self.metric, self.n = emb, metric, emb.n
        self.sq = emb.sqnorms()
        norm = np.sqrt(self.sq)
        self.inv_norm = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
        ip, mm = emb.mean_inner() if metric in ("euclidean", "rbf") else (np.zeros(1), 0.0)
        to_mean = np.maximum(self.sq - 2.0 * ip + mm, 0.0)  # ||x_i - mu||^2
        self.shift = 2.0 * float(np.sqrt(to_mean.max())) if metric == "euclidean" else 0.0
        s2 = 2.0 * float(to_mean.mean()) if metric == "rbf" else 1.0  # E||x_i - x_j||^2
        self.bandwidth = s2 if s2 > 0 else 1.0
        self._diag = self._self_similarity()
        self.dense = None
        if self.n * self.n * 4 <= max_block_bytes:
            self.dense = np.empty((self.n, self.n), dtype=np.float32)
            for rows in self.row_blocks(np.arange(self.n)):
                self.dense[rows] = self._compute(rows)

    def row_blocks(self, rows: np.ndarray) -> list[np.ndarray]:
        """Split ``rows`` so that one computed block of float64 temporaries stays small."""
        size = max(1, TEMP_BYTES // (8 * max(self.n, 1)))
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def diag(self) -> np.ndarray:
        """s_ii, (n,) float32."""
        return self._diag

    def _self_similarity(self) -> np.ndarray:
        if self.metric == "cosine":
            return np.where(self.sq > 0, 1.0, 0.5).astype(np.float32)
        if self.metric == "dot":
            return self.sq.astype(np.float32)
        return np.full(self.n, self.shift if self.metric == "euclidean" else 1.0, np.float32)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """s_rj for r in rows and every j, (len(rows), n) float32."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.dense is not None:
            return self.dense[rows]
        if len(rows) == 0:
            return np.empty((0, self.n), np.float32)
        return np.concatenate([self._compute(r) for r in self.row_blocks(rows)])

    def colsum(self) -> np.ndarray:
        """sum_i s_ij, (n,) float64, blockwise."""
        total = np.zeros(self.n)
        for rows in self.row_blocks(np.arange(self.n)):
            total += self.rows(rows).sum(axis=0, dtype=np.float64)
        return total

    def _sqdist(self, rows: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Squared distances from the Gram block, in place (blocks are large)."""
        gram *= -2.0
        gram += self.sq[rows, None]
        gram += self.sq[None, :]
        return np.maximum(gram, 0.0, out=gram)

    def _compute(self, rows: np.ndarray) -> np.ndarray:
        g = self.emb.gram_rows(rows)
        if self.metric == "cosine":
            g *= self.inv_norm[rows, None]
            g *= 0.5 * self.inv_norm[None, :]
            g += 0.5
        elif self.metric == "euclidean":
            g = np.sqrt(self._sqdist(rows, g), out=g)
            g = np.maximum(self.shift - g, 0.0, out=g)  # rounding never makes it negative
        elif self.metric == "rbf":
            g = self._sqdist(rows, g)
            g *= -1.0 / self.bandwidth
            g = np.exp(g, out=g)
        s = g.astype(np.float32)
        s[np.arange(len(rows)), rows] = self._diag[rows]  # exact self-similarity, no rounding
        return s


class IncrementalCholesky:
    """Greedy (pivoted) Cholesky of K + ridge I, one pivot at a time (Chen et al. 2018, "Fast greedy
    MAP inference for DPPs").

    After pivots s_1..s_t, ``q[:t]`` holds (K + ridge I)[:, S] L^{-T} with L the Cholesky factor of
    (K + ridge I)[S, S], so row j of it, q[:t, j], is the new row of L when j is pivoted next, and
    ``d2`` = diag(K + ridge I) - sum_t q[t]^2 are the Schur complements (d2_j = the conditional
    variance of j given S). O(n t) time per pivot, O(n * capacity) float64 memory.
    """

    def __init__(self, column: Callable[[int], np.ndarray], diag: np.ndarray, ridge: float,
                 capacity: int):
        self.column, self.ridge = column, float(ridge)
        self.q = np.empty((capacity, len(diag)))
        self.d2 = diag.astype(np.float64) + self.ridge
        self.t = 0

    def add(self, j: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Pivot j; return (its new column q_t (n,), the new row of L, its diagonal entry)."""
        t = self.t
        row = self.q[:t, j].copy()
        pivot = float(np.sqrt(max(self.d2[j], 1e-300)))
        col = self.column(j).astype(np.float64)
        col[j] += self.ridge
        q = (col - row @ self.q[:t]) / pivot
        self.q[t], self.t = q, t + 1
        self.d2 -= q * q
        self.d2[j] = 0.0
        return q, row, pivot


