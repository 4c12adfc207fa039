"""Uniform random selection: the baseline that every paper finds hard to beat."""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.registry import register


@register("random", family="baseline", paper="DeepCore's Uniform (Guo et al. 2022)", params={})
def random(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool) -> np.ndarray:
    """i.i.d. uniform scores: the top window then keeps a uniform random subset. O(N)."""
    return rng.random(ctx.n)
