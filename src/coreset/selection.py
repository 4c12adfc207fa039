"""Scores + ratio + window + balance -> selected indices.

Windows are independent of the score, so any score can be taken from the top, the bottom, the
moderate band around the median, both ends, or at random. Higher score = "top".
Ties are broken by sample index (stable sorts), so a selection is a pure function of its inputs.
"""

from __future__ import annotations

import numpy as np

from coreset.scores.registry import WINDOWS


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() rounds halves to even)."""
    return int(np.floor(x + 0.5))


def budget(n: int, ratio: float) -> int:
    """Number of samples kept from n at this ratio: round-half-up(ratio * n)."""
    return round_half_up(ratio * n)


def class_budgets(counts: np.ndarray, ratio: float) -> np.ndarray:
    """Split budget(sum(counts), ratio) over classes proportionally (largest remainder method).

    Every class gets floor or ceil of ratio * n_c, and the total is exactly the global budget,
    which DeepCore's per-class round() does not guarantee. Remainder ties go to the smaller class
    (then the lower label), so that a tiny class is not the one left out.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = budget(int(counts.sum()), ratio)
    exact = ratio * counts
    base = np.minimum(np.floor(exact).astype(np.int64), counts)
    short = total - int(base.sum())
    room = base < counts
    order = np.lexsort((np.arange(len(counts)), counts, -(exact - base)))  # largest remainder
    order = order[room[order]]
    base[order[:short]] += 1
    return base


def window_pick(scores: np.ndarray, k: int, window: str, rng: np.random.Generator) -> np.ndarray:
    """Positions (into ``scores``) of the k samples that ``window`` keeps.

    - top: the k highest scores; bottom: the k lowest;
    - moderate: the k around the median: ascending ranks [start, start + k) with
      start = round-half-up((n - k) / 2), the reference's [0.5 - r/2, 0.5 + r/2] * n band;
    - two-ends: ceil(k/2) highest and floor(k/2) lowest;
    - random: k uniformly at random (the score is ignored).
    """
    n = len(scores)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be within [0, {n}]")
    if window not in WINDOWS:
        raise ValueError(f"window={window!r}: allowed values are {', '.join(WINDOWS)}")
    if window == "random":
        return np.sort(rng.choice(n, size=k, replace=False))
    ascending = np.argsort(scores, kind="stable")
    if window == "top":
        picked = np.argsort(-scores, kind="stable")[:k]
    elif window == "bottom":
        picked = ascending[:k]
    elif window == "moderate":
        start = round_half_up((n - k) / 2)
        picked = ascending[start : start + k]
    else:  # two-ends
        high = k - k // 2
        picked = np.concatenate([np.argsort(-scores, kind="stable")[:high], ascending[: k // 2]])
    return np.sort(picked)


def select(
    scores: np.ndarray,
    labels: np.ndarray,
    ratio: float,
    window: str,
    balance: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted indices of the kept samples. Balanced: the window is applied within each class with
    the class budgets of :func:`class_budgets`; global: once over all samples.

    Greedy orders mark samples beyond their computed length with -inf: asking the top window for
    more than the order holds is an error, never a silent random fill.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio={ratio!r}: allowed values are in (0, 1]")
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if balance:
        classes, counts = np.unique(labels, return_counts=True)
        parts = []
        for c, k in zip(classes, class_budgets(counts, ratio), strict=True):
            idx = np.flatnonzero(labels == c)
            parts.append(idx[_checked_pick(scores[idx], int(k), window, rng)])
        picked = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    else:
        picked = _checked_pick(scores, budget(len(scores), ratio), window, rng)
    return np.sort(picked).astype(np.int64)


def _checked_pick(scores: np.ndarray, k: int, window: str, rng: np.random.Generator) -> np.ndarray:
    picked = window_pick(scores, k, window, rng)
    if window != "random" and np.isneginf(scores[picked]).any():
        ranked = int(np.isfinite(scores).sum())
        raise ValueError(
            f"the window {window!r} needs {k} ranked samples but the greedy order holds only "
            f"{ranked}: raise the selector's max_ratio"
        )
    return picked
