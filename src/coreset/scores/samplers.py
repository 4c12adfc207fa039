"""Samplers: windows with parameters, over any cached score (``window: strata`` and
``window: beta`` in a recipe, their parameters under ``window_params``).

- ``strata``: CCS's stratified sampling (Zheng et al. 2023): drop the ``hard_cut`` fraction with
  the highest score (the hardest, as "top" is the hard end of every difficulty score), split the
  rest into ``strata`` equal-width bins of the score, spread the budget over the bins with CCS's
  ``bin_allocate`` and sample uniformly inside each bin. Nested in the budget (one random
  permutation per bin, :func:`stratified_order`), so the selections at growing ratios are
  prefixes of one order.
- ``beta``: DUAL's Beta sampling (Cho et al. 2025, ICML), as corrected in its repository in
  2025-09: with ``d`` the mean assigned-label probability over the first ``trajectory`` (30)
  pretraining epochs and the prune rate p = 1 - ratio, anchor = mean ``d`` of the ``anchor`` (10)
  highest-scoring samples, b = 15 (1 - anchor)(1 - p^c_d), a = 16 - b; draw the budget without
  replacement with probability proportional to BetaPDF(d; a, b) x score. The Beta density moves
  with the ratio, so selections at different ratios are not nested.

Both are O(n) per group plus a sort (strata: O(n k) for the nested budgets). They are called per
class (balanced) or once (global) by :func:`coreset.scores.selection.select`, with that group's
budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coreset.rules import Float, Int, Rule, RuleError

# window -> its parameters: rule and default (the references' defaults)
PARAMS: dict[str, dict[str, tuple[Rule, Any]]] = {
    "strata": {"strata": (Int(1), 50), "hard_cut": (Float(0.0, 1.0, open_high=True), 0.1)},
    "beta": {"c_d": (Float(0.0, open_low=True), 4.0), "trajectory": (Int(1), 30),
             "anchor": (Int(1), 10)},
}
SAMPLERS = tuple(PARAMS)


def window_params(key: str, window: str, given: Any) -> dict[str, Any]:
    """The window's parameters, defaults filled in; a RuleError names a bad or unknown key (a
    window without parameters accepts only {})."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise RuleError(key, given, "a mapping of the window's parameters ({} for none)")
    rules = PARAMS.get(window, {})
    for name in given:
        if name not in rules:
            allowed = ", ".join(rules) if rules else "none (only strata and beta have parameters)"
            raise RuleError(f"{key}.{name}", given[name],
                            f"not a parameter of window {window!r}; its parameters: {allowed}")
    return {name: rule(f"{key}.{name}", given.get(name, default))
            for name, (rule, default) in rules.items()}


# --- CCS's strata ---------------------------------------------------------------------------------

def strata_of(score: np.ndarray, strata: int) -> np.ndarray:
    """Equal-width bins over [min, max] of ``score``: stratum index per sample, the maximum in the
    last bin. (The reference widens the range to max * 1.0001, which drops the maximum when it is
    negative, as AUM can be; the clip keeps it.)"""
    low, high = float(score.min()), float(score.max())
    if high == low:
        return np.zeros(len(score), dtype=np.int64)
    step = (high - low) / strata
    return np.clip(np.floor((score - low) / step), 0, strata - 1).astype(np.int64)


def allocations(sizes: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """(len(budgets), k) samples per stratum for each budget: CCS's ``bin_allocate``, strata in
    ascending size (ties by index), each min(size, remaining // strata left). Vectorised over the
    budgets: O(k * len(budgets))."""
    by_size = np.argsort(sizes, kind="stable")
    remaining = np.asarray(budgets, dtype=np.int64).copy()
    out = np.zeros((len(remaining), len(sizes)), dtype=np.int64)
    for position, stratum in enumerate(by_size):
        take = np.minimum(sizes[stratum], remaining // (len(sizes) - position))
        out[:, stratum] = take
        remaining -= take
    return out


def stratified_order(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions in CCS's stratified-sampling order: its first m entries are the samples that
    stratified sampling with budget m keeps, for every m (coreset.scores.coverage explains why
    the allocations are nested)."""
    sizes = np.bincount(strata, minlength=k)
    members = [rng.permutation(np.flatnonzero(strata == s)) for s in range(k)]
    alloc = allocations(sizes, np.arange(len(strata) + 1))
    grown = np.diff(alloc, axis=0)  # (M, k): which stratum gains the m-th sample
    if not ((grown >= 0).all() and (grown.sum(axis=1) == 1).all()):
        raise AssertionError("CCS allocations are not nested")  # the docstring's argument
    stratum = grown.argmax(axis=1)
    slot = alloc[1:][np.arange(len(stratum)), stratum] - 1
    return np.array([members[s][i] for s, i in zip(stratum, slot, strict=True)], dtype=np.int64)


def strata_pick(scores: np.ndarray, k: int, rng: np.random.Generator, *, strata: int,
                hard_cut: float) -> np.ndarray:
    """Sorted positions of the k samples CCS's stratified sampling keeps from ``scores``, after
    dropping the floor(hard_cut * n) highest (ties by index)."""
    n = len(scores)
    cut = int(np.floor(hard_cut * n))
    keep = np.sort(np.argsort(-scores, kind="stable")[cut:])
    if k > len(keep):
        raise ValueError(f"the window 'strata' needs {k} samples of {n} but its hard_cut = "
                         f"{hard_cut} leaves {len(keep)}: lower hard_cut or the ratio")
    if k == 0:
        return keep[:0]
    order = stratified_order(strata_of(scores[keep], strata), strata, rng)
    return np.sort(keep[order[:k]])


# --- DUAL's Beta sampler --------------------------------------------------------------------------

def beta_shape(anchor: float, prune_rate: float, c_d: float) -> tuple[float, float]:
    """DUAL's (a, b): b = 15 (1 - anchor)(1 - prune_rate^c_d), a = 16 - b."""
    b = 15.0 * (1.0 - anchor) * (1.0 - prune_rate ** c_d)
    return 16.0 - b, b


def beta_weights(scores: np.ndarray, difficulty: np.ndarray, ratio: float, *, c_d: float,
                 anchor: int) -> np.ndarray:
    """DUAL's sampling weights BetaPDF(difficulty; a, b) x score (unnormalised), the anchor taken
    over the ``anchor`` highest scores of this group."""
    from scipy.stats import beta

    top = np.argsort(-scores, kind="stable")[:anchor]
    a, b = beta_shape(float(difficulty[top].mean()), 1.0 - ratio, c_d)
    return beta.pdf(difficulty, a, b) * scores


def beta_pick(scores: np.ndarray, k: int, rng: np.random.Generator, *, difficulty: np.ndarray,
              ratio: float, c_d: float, anchor: int) -> np.ndarray:
    """Sorted positions of k samples drawn without replacement with probability proportional to
    :func:`beta_weights` (``difficulty`` from :func:`mean_probability`)."""
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise ValueError("the window 'beta' weighs samples by their score, which must be finite "
                         f"and >= 0 (this one ranges over [{scores.min():.4g}, "
                         f"{scores.max():.4g}]): use it with a non-negative score such as dual, "
                         "dyn_unc, el2n, grand or forgetting")
    weights = beta_weights(scores, difficulty, ratio, c_d=c_d, anchor=anchor)
    positive = int((weights > 0).sum())
    if k > positive:
        raise ValueError(f"the window 'beta' needs {k} samples with a positive weight but only "
                         f"{positive} of {len(scores)} have one (score 0 or a Beta density of 0)")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.choice(len(scores), size=k, replace=False, p=weights / weights.sum()))


def mean_probability(prob: np.ndarray, trajectory: int) -> np.ndarray:
    """(N,) DUAL's ``pred_mean``: the assigned label's probability (S, E, N) averaged over the
    first ``trajectory`` epochs and the models."""
    if trajectory > prob.shape[1]:
        raise ValueError(f"the window 'beta': trajectory = {trajectory} needs at least "
                         f"{trajectory} pretraining epochs; the dynamics hold {prob.shape[1]} "
                         "(raise pretrain.epochs or lower window_params.trajectory)")
    return prob[:, :trajectory].astype(np.float64).mean(axis=(0, 1))
