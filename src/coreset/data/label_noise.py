"""Synthetic label noise for the `corrupt` stage (training split only).

The Moderate coreset paper (Xia et al., ICLR 2023, Sec. 5.2) uses symmetric label noise at 20 %
and 35 %: a flipped label is drawn uniformly from the OTHER classes, so a flip always changes the
label and the realised noise rate equals the nominal one. Pair (asymmetric) noise, c -> c + 1 mod C,
is the usual companion setting (Han et al., NeurIPS 2018, "Co-teaching").
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from coreset.data.sampling import choose

MODES = ("symmetric", "pair")


def flip_labels(
    labels: np.ndarray,
    rate: float,
    num_classes: int,
    mode: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return a copy of `labels` with exactly round-half-up(rate * N) of them flipped.

    The flipped samples are chosen uniformly without replacement (`sampling.choose`).
    mode="symmetric": the new label is uniform over the num_classes - 1 other classes.
    mode="pair": class c becomes (c + 1) % num_classes.
    """
    labels = _check(labels, num_classes, mode)
    idx = choose(labels.shape[0], rate, rng)
    out = labels.copy()
    if mode == "symmetric":
        # A uniform non-zero offset mod C is uniform over the other classes and never the same.
        offset = rng.integers(1, num_classes, size=idx.shape[0])
    else:
        offset = np.ones(idx.shape[0], dtype=np.int64)
    out[idx] = (labels[idx].astype(np.int64) + offset) % num_classes
    return out


def _check(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got dtype {labels.dtype} shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}), "
            f"got range [{labels.min()}, {labels.max()}]"
        )
    return labels
