"""Scores + ratio + window + balance -> selected indices.

Windows are independent of the score, so any score can be taken from the top, the bottom, the
moderate band around the median, both ends, or at random. Higher score = "top".
Ties are broken by sample index (stable sorts), so a selection is a pure function of its inputs.

One rounding rule for "rate x n" everywhere (selection budgets, greedy lengths, corrupted, noisy
and adversarial samples): the rate is read as the decimal it is written as (0.35 is 7/20, not the
binary float 0.34999...), and rate x n is rounded half up (:func:`budget`, which is
``data.sampling.count``). The moderate window alone follows the Moderate-DS reference's own
rounding (:func:`moderate_band`), so that it keeps exactly the reference's samples.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from coreset.data.sampling import count
from coreset.scores.samplers import SAMPLERS, beta_pick, strata_pick

# the windows any score can be read through (higher score = "top"); selectors declare a default.
# The samplers (strata, beta) take parameters (coreset.scores.samplers).
WINDOWS = ("top", "bottom", "moderate", "two-ends", "random", *SAMPLERS)


def exact_rate(rate: float) -> Fraction:
    """The rate as the decimal it is written as: exact_rate(0.35) == Fraction(7, 20)."""
    return Fraction(repr(float(rate)))


def budget(n: int, ratio: float) -> int:
    """Number of samples kept from n at this ratio: round-half-up(ratio * n), exactly
    (``data.sampling.count``: budget(90, 0.35) = round-half-up(31.5) = 32)."""
    return count(n, ratio)


def class_budgets(counts: np.ndarray, ratio: float) -> np.ndarray:
    """Split budget(sum(counts), ratio) over classes proportionally (largest remainder method).

    Every class gets floor or ceil of ratio * n_c (exact arithmetic), and the total is exactly the
    global budget, which DeepCore's per-class round() does not guarantee. Remainder ties go to the
    smaller class (then the lower label), so that a tiny class is not the one left out.
    """
    counts = np.asarray(counts, dtype=np.int64)
    rate = exact_rate(ratio)
    total = budget(int(counts.sum()), ratio)
    exact = [rate * int(c) for c in counts]
    base = np.array([min(math.floor(x), int(c)) for x, c in zip(exact, counts, strict=True)],
                    dtype=np.int64)
    remainder = [x - int(b) for x, b in zip(exact, base, strict=True)]
    short = total - int(base.sum())
    order = sorted((i for i in range(len(counts)) if base[i] < counts[i]),
                   key=lambda i: (-remainder[i], counts[i], i))
    base[order[:short]] += 1
    return base


def moderate_band(n: int, ratio: float) -> tuple[int, int]:
    """Ascending ranks [lo, hi) that Moderate-DS keeps (``get_prune_idx`` of the reference code):
    lo = round(n * (0.5 - ratio / 2)), hi = round(n * (0.5 + ratio / 2)), in binary floats with
    Python's round() (half to even). hi - lo may differ from :func:`budget` by one (n = 11, ratio
    0.2: ranks [4, 7), 3 samples where round-half-up(2.2) = 2): the moderate window keeps the
    reference's samples, not the shared budget."""
    return round(n * (0.5 - ratio / 2)), round(n * (0.5 + ratio / 2))


def window_pick(scores: np.ndarray, k: int, window: str, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions (into ``scores``) of the k samples that ``window`` keeps.

    - top: the k highest scores; bottom: the k lowest;
    - moderate: the k around the median, ascending ranks [lo, lo + k) with (lo, lo + k) =
      :func:`moderate_band` (n, ratio) for the ratio that :func:`select` passed; here, for a bare
      k, lo = floor((n - k) / 2) (centred; :func:`select` uses the reference's band);
    - two-ends: the ceil(k/2) highest, then the floor(k/2) lowest of the rest (never a sample
      twice, ties included);
    - random: k uniformly at random (the score is ignored).
    """
    n = len(scores)
    return _pick(scores, window, rng, (n - k) // 2, k)


def _pick(scores: np.ndarray, window: str, rng: np.random.Generator, lo: int,
          k: int) -> np.ndarray:
    """The picks of ``window``; ``lo`` is the first ascending rank of the moderate band."""
    n = len(scores)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be within [0, {n}]")
    if window not in WINDOWS:
        raise ValueError(f"window={window!r}: allowed values are {', '.join(WINDOWS)}")
    if window == "random":
        return np.sort(rng.choice(n, size=k, replace=False))
    ascending = np.argsort(scores, kind="stable")
    descending = np.argsort(-scores, kind="stable")
    if window == "top":
        picked = descending[:k]
    elif window == "bottom":
        picked = ascending[:k]
    elif window == "moderate":
        picked = ascending[lo : lo + k]
    else:  # two-ends: the low end is taken from what the high end left
        high = descending[: k - k // 2]
        rest = ascending[~np.isin(ascending, high)]
        picked = np.concatenate([high, rest[: k // 2]])
    return np.sort(picked)


def select(
    scores: np.ndarray,
    labels: np.ndarray,
    ratio: float,
    window: str,
    balance: bool,
    rng: np.random.Generator,
    window_params: dict | None = None,
    difficulty: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted indices of the kept samples. Balanced: the window is applied within each class with
    the class budgets of :func:`class_budgets` (the moderate window: each class's
    :func:`moderate_band`); global: once over all samples.

    The samplers ``strata`` and ``beta`` read ``window_params`` (their defaults filled in by
    ``samplers.window_params``); ``beta`` also reads ``difficulty`` (N,), DUAL's mean
    assigned-label probability (``samplers.mean_probability``), and weighs by the score.

    A ratio that keeps no sample (of some class, when balanced) is an error naming the smallest
    ratio that keeps one. Greedy orders mark samples beyond their computed length with -inf:
    asking a window for more than the order holds is an error, never a silent random fill.
    """
    if isinstance(ratio, bool) or not 0 < ratio <= 1:
        raise ValueError(f"ratio = {ratio!r} is not allowed: a number in (0, 1]")
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if balance \
        else [np.arange(len(scores))]
    bands = _bands(groups, labels, ratio, window, balance)
    if window in SAMPLERS:
        parts = [idx[_sample(scores[idx], window, rng, hi - lo, window_params or {}, ratio,
                             None if difficulty is None else np.asarray(difficulty)[idx])]
                 for idx, (lo, hi) in zip(groups, bands, strict=True)]
    else:
        parts = [idx[_checked_pick(scores[idx], window, rng, lo, hi - lo)]
                 for idx, (lo, hi) in zip(groups, bands, strict=True)]
    picked = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return np.sort(picked).astype(np.int64)


def _sample(scores: np.ndarray, window: str, rng: np.random.Generator, k: int, params: dict,
            ratio: float, difficulty: np.ndarray | None) -> np.ndarray:
    """The picks of a sampler window for one group."""
    if window == "strata":
        return strata_pick(scores, k, rng, strata=params.get("strata", 50),
                           hard_cut=params.get("hard_cut", 0.1))
    if difficulty is None:
        raise ValueError("the window 'beta' needs the mean assigned-label probability of every "
                         "sample (pretraining dynamics); none was given")
    return beta_pick(scores, k, rng, difficulty=difficulty, ratio=ratio,
                     c_d=params.get("c_d", 4.0), anchor=params.get("anchor", 10))


def _bands(groups: list[np.ndarray], labels: np.ndarray, ratio: float, window: str,
           balance: bool) -> list[tuple[int, int]]:
    """(first moderate rank, first rank after) per group; only the width counts for the other
    windows. Raises when a group keeps nothing."""
    sizes = [len(g) for g in groups]
    if window == "moderate":
        bands = [moderate_band(n, ratio) for n in sizes]
    else:
        ks = class_budgets(np.array(sizes), ratio) if balance else [budget(sizes[0], ratio)]
        bands = [((n - int(k)) // 2, (n - int(k)) // 2 + int(k)) for n, k in zip(sizes, ks,
                                                                                 strict=True)]
    for g, (lo, hi) in zip(groups, bands, strict=True):
        if hi <= lo and len(g):
            where = f"of class {labels[g[0]]} ({len(g)} samples)" if balance else \
                f"of the {len(g)} samples"
            raise ValueError(
                f"ratio = {ratio!r} keeps no sample {where}: the smallest ratio that keeps one "
                f"{'of every class ' if balance else ''}is "
                f"{smallest_ratio(np.array(sizes), window, balance):.6g}")
    return bands


def smallest_ratio(sizes: np.ndarray, window: str, balance: bool) -> float:
    """The smallest ratio (to 6 significant digits, rounded up) at which every group keeps at
    least one sample: the budget is non-decreasing in the ratio, so bisection finds it."""
    def keeps_all(r: float) -> bool:
        if window == "moderate":
            return all(hi > lo for lo, hi in (moderate_band(int(n), r) for n in sizes))
        ks = class_budgets(sizes, r) if balance else [budget(int(sizes.sum()), r)]
        return min(ks) >= 1

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if keeps_all(mid) else (mid, hi)
    shown = float(f"{hi:.6g}")
    return shown if keeps_all(shown) else float(f"{hi * (1 + 1e-5):.6g}")


def _checked_pick(scores: np.ndarray, window: str, rng: np.random.Generator, lo: int,
                  k: int) -> np.ndarray:
    picked = _pick(scores, window, rng, lo, k)
    if window != "random" and np.isneginf(scores[picked]).any():
        ranked = int(np.isfinite(scores).sum())
        raise ValueError(
            f"the window {window!r} needs {k} ranked samples of {len(scores)} but the score ranks "
            f"only {ranked} (a greedy order stops at ceil(max_ratio * n) picks, and ccs and d2 "
            f"leave their hard cut unranked: the rest is -inf): raise the recipe's max_ratio to "
            f"at least the ratio" + ("" if window == "top" else ", or to 1.0 for this window")
            + ", or lower its hard_cut")
    return picked


def order_to_score(order: np.ndarray, n: int) -> np.ndarray:
    """Greedy order (first pick first) -> score where the first pick is highest; unpicked = -inf."""
    score = np.full(n, -np.inf)
    order = np.asarray(order, dtype=np.int64)
    score[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    return score
