"""The heuristic slides' overlap analysis and the Moderate paper's Fig. 1 analogue.

- Overlap ("repetition rate"): |A ∩ B| / |A| between the kept sets of every pair of recipes at
  one ratio, and the same between the dropped sets (the complements in the training set).
  Recipes kept at the same ratio have the same size up to per-class rounding, so the rate is
  symmetric up to that rounding; row A, column B is |A ∩ B| / |A|.
- Windows: the moderate distance score taken from the bottom, the moderate band and the top,
  on a 2-D PCA projection of the penultimate features of a few classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coreset.scores.selection import select

WINDOWS = ("bottom", "moderate", "top")


def overlap_matrix(sets: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Row A, column B: |A ∩ B| / |A| (1 on the diagonal; NaN for an empty A)."""
    names = list(sets)
    unique = {k: np.unique(np.asarray(v)) for k, v in sets.items()}
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        if len(unique[a]) == 0:
            continue
        for b in names:
            common = np.intersect1d(unique[a], unique[b], assume_unique=True)
            out.loc[a, b] = len(common) / len(unique[a])
    return out


def dropped_sets(sets: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The complement of each kept set in range(n)."""
    return {k: np.setdiff1d(np.arange(n), v) for k, v in sets.items()}


def window_masks(score: np.ndarray, labels: np.ndarray, ratio: float, balance: bool
                 ) -> dict[str, np.ndarray]:
    """Boolean masks of the samples each window keeps, with the selection code itself (so the
    figure shows exactly what select@ keeps for moderate_bottom / moderate / moderate_top)."""
    masks = {}
    for window in WINDOWS:
        idx = select(score, labels, ratio, window, balance, np.random.default_rng(0))
        mask = np.zeros(len(score), dtype=bool)
        mask[idx] = True
        masks[window] = mask
    return masks


def project(features: np.ndarray, labels: np.ndarray, classes: Sequence[int], center: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(2-D PCA coordinates of the samples of ``classes``, their positions in the training set,
    the projected class centres (median or mean, as the score computes them))."""
    from sklearn.decomposition import PCA

    where = np.flatnonzero(np.isin(labels, classes))
    x = features[where].astype(np.float64)
    pca = PCA(n_components=2, svd_solver="full").fit(x)  # exact SVD: deterministic
    reduce = np.median if center == "median" else np.mean
    centres = np.stack([reduce(x[labels[where] == c], axis=0) for c in classes])
    return pca.transform(x), where, pca.transform(centres)
