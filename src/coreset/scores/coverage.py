"""Coverage-centric coreset selection (CCS, Zheng et al. ICLR 2023) and the difficulty scores it
(and D2 pruning) stratify: AUM, forgetting, EL2N.

CCS depends on the budget, yet its score here does not depend on the ratio. The design: with the
hard cut fixed by the recipe (``hard_cut``, beta), CCS's selections for budgets m = 1, 2, ... are
nested. Its budget split over strata (the reference's ``bin_allocate``: strata in ascending size,
each takes min(size, remaining // strata left)) grows by exactly one sample in exactly one stratum
when m grows by one (floor((r + 1) / j) - floor(r / j) is 0 or 1, and a capped stratum stays
capped), and the samples inside a stratum are a prefix of one random permutation. So the whole
family is one ORDER, and ``select``'s window ``top`` at any ratio keeps exactly CCS's selection at
that budget. The recipe states the ratio-dependent choice (beta) itself: the paper picks beta per
pruning rate; a sweep over ratios uses one recipe per beta.
"""

from __future__ import annotations

import math

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.greedy import class_orders
from coreset.scores.importance import NEVER_LEARNED, el2n, forgetting
from coreset.scores.params import Choice, Float, Int
from coreset.scores.registry import register
from coreset.scores.samplers import strata_of, stratified_order
from coreset.scores.selection import exact_rate
from coreset.scores.trajectory import area_under_margin

DIFFICULTY = ("aum", "forgetting", "el2n")
CUT_BY = ("aum", "score")
CUT_SCOPE = ("global", "class")


def difficulty(ctx: ScoringContext, key: str, method: str,
               never_learned: str = "zero") -> np.ndarray:
    """(N,) higher = harder: -AUM (probability margins, CCS's ``accumulated_margin``), the
    forgetting count, or EL2N, each averaged over the pretrained models.

    Forgetting counts correct -> wrong events. ``never_learned="zero"`` leaves a sample that was
    never classified correctly at 0 events, as CCS's and D2's reference code count them (their
    recorder only adds events); ``"max"`` ranks it above every forgettable sample (count E, Toneva
    et al.'s choice for their own ranking). Under label noise the never-learned samples are mostly
    the mislabeled ones, so ``max`` makes them the most important and D2 or CCS keep them first.
    """
    if key == "aum":
        return -area_under_margin(ctx, method, space="prob")
    if key == "forgetting":
        return forgetting(ctx, rng=np.random.default_rng(0), balance=False,
                          never_learned=never_learned)
    return el2n(ctx, rng=np.random.default_rng(0), balance=False)


def hard_cut_drop(ctx: ScoringContext, hardness: np.ndarray, method: str, beta: float,
                  cut_by: str, scope: str, balance: bool) -> np.ndarray:
    """(N,) True for the samples the hard cut removes: the floor(beta * N) hardest over all
    samples (``scope="global"``, the references' ``mislabel_mask`` before any per-class step), or
    floor(beta * n_c) per class (``scope="class"``; only with ``balance``). Hardest by -AUM
    (``cut_by="aum"``, read only when beta > 0) or by ``hardness`` itself (``"score"``)."""
    if beta == 0:
        return np.zeros(len(hardness), dtype=bool)
    cut = hardness if cut_by == "score" else difficulty(ctx, "aum", method)
    if scope == "global" or not balance:
        return hard_cut_mask(cut, beta)
    mask = np.zeros(len(cut), dtype=bool)
    for c in np.unique(ctx.labels):
        idx = np.flatnonzero(ctx.labels == c)
        mask[idx] = hard_cut_mask(cut[idx], beta)
    return mask


def hard_cut_mask(hardness: np.ndarray, beta: float) -> np.ndarray:
    """True for the floor(beta * n) hardest samples (beta read as the decimal it is written
    as; ties: the lower index is cut first), as CCS's ``mislabel_mask`` with
    ``int(mis_ratio * n)``."""
    cut = math.floor(exact_rate(beta) * len(hardness))
    mask = np.zeros(len(hardness), dtype=bool)
    mask[np.argsort(-hardness, kind="stable")[:cut]] = True
    return mask


@register("ccs", family="coverage", paper="Zheng et al. 2023, Coverage-centric coreset selection "
          "(ICLR)", balance=False,
          params={"score": Choice(DIFFICULTY), "hard_cut": Float(0.0, 1.0, open_high=True),
                  "strata": Int(1), "cut_by": Choice(CUT_BY),
                  "cut_scope": Choice(CUT_SCOPE), "never_learned": Choice(NEVER_LEARNED)})
def ccs(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, score: str = "aum",
        hard_cut: float = 0.1, strata: int = 50, cut_by: str = "aum",
        cut_scope: str = "global", never_learned: str = "zero") -> np.ndarray:
    """CCS: drop the ``hard_cut`` (beta) hardest fraction, split the rest into ``strata`` (k = 50)
    equal-width bins of the difficulty ``score``, and spread the budget evenly over the bins
    (smallest first; a bin smaller than its share gives the rest to the others), sampling
    uniformly inside each bin.

    The reference code cuts by AUM (probability margins) whatever the stratified score
    (``cut_by: aum``, its default); ``cut_by: score`` cuts by the stratified score, as the paper's
    Algorithm 1 reads. The reference's CIFAR-10 command stratifies AUM with beta = 0.3 at 10 %
    kept; the paper picks beta per pruning rate (0 at low rates). The default 0.1 is one recipe;
    set it per rate, and at least at the expected noise rate under label noise
    (docs/selectors.md). Global (``balance: false``) as the reference; balanced runs CCS per
    class, after a hard cut over all samples (``cut_scope: global``, the reference's
    ``mislabel_mask``) or per class (``cut_scope: class``). ``never_learned``: see
    :func:`difficulty` (``zero``: the reference).

    The result is an order (module docstring): the window ``top`` at a ratio keeps CCS's selection
    at that budget. The cut samples are unranked (-inf), so ``select`` refuses a ratio above
    1 - beta. O(N k) time and memory for the nested budgets, plus the difficulty score.
    """
    hardness = difficulty(ctx, score, "ccs", never_learned)
    dropped = hard_cut_drop(ctx, hardness, "ccs", hard_cut, cut_by, cut_scope, balance)

    def order(idx: np.ndarray, group_rng: np.random.Generator) -> np.ndarray:
        keep = np.flatnonzero(~dropped[idx])
        if len(keep) == 0:
            return keep
        return keep[stratified_order(strata_of(hardness[idx][keep], strata), strata, group_rng)]

    return class_orders(ctx.labels, balance, order, rng)
