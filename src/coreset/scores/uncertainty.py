"""Uncertainty scores of the pretrained models: least confidence, entropy, margin.

DeepCore (Guo et al. 2022, Eq. 2) after Coleman et al. 2020 (Selection via Proxy): the samples the
classifier is least sure about are the most informative, so a HIGHER score = MORE uncertain and the
default window ``top`` keeps the most uncertain samples.

Differences from DeepCore's ``Uncertainty`` class, and why:

- DeepCore scores *certainty* (max logit, sum p log p, p1 - p2) and then sorts ascending in the
  balanced path but descending in the unbalanced path, so unbalanced selection keeps the MOST
  certain samples (a bug, see docs/PROTOCOL.md). We return uncertainty and never flip the direction:
  balanced or not, ``top`` keeps the most uncertain.
- DeepCore's least confidence uses the max *logit*; the paper's formula (and ours) is
  1 - max softmax probability. Logits are not comparable across samples (shift invariance).
- DeepCore uses one model; we average each sample's score over the S pretrained models (``models``),
  like EL2N/GraNd average over seeds. ``models="first"`` reproduces the single-model setting.

All three are O(S N C) time and memory from ``ctx.probs``; no model is needed.
"""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.params import MODELS
from coreset.scores.registry import register

PAPER = "DeepCore (Guo et al. 2022); Coleman et al. 2020"


def _probs(ctx: ScoringContext, models: str) -> np.ndarray:
    """(S', N, C) float64 probabilities of the models to average over."""
    sel = slice(None) if models == "all" else slice(0, 1)
    return ctx.probs[sel].astype(np.float64)


def least_confidence_score(probs: np.ndarray) -> np.ndarray:
    """1 - max_c p_c over the last axis. O(size of probs)."""
    return 1.0 - probs.max(axis=-1)


def entropy_score(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy -sum_c p_c log p_c over the last axis, with 0 log 0 = 0. O(size)."""
    p = np.clip(probs, 0.0, 1.0)
    logp = np.log(np.where(p > 0, p, 1.0))  # p = 0 contributes 0, not nan
    return -(p * logp).sum(axis=-1)


def margin_score(probs: np.ndarray) -> np.ndarray:
    """-(p_first - p_second) over the last axis: highest when the top two classes tie. O(size)."""
    top2 = np.partition(probs, probs.shape[-1] - 2, axis=-1)[..., -2:]
    return -(top2[..., 1] - top2[..., 0])


@register("least_confidence", family="uncertainty", paper=PAPER, params={"models": MODELS})
def least_confidence(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Least confidence 1 - max_c p(c|x), averaged over models (DeepCore Eq. 2). O(S N C).

    DeepCore uses the max logit instead of the max probability; see the module docstring.
    """
    return least_confidence_score(_probs(ctx, models)).mean(axis=0)


@register("entropy", family="uncertainty", paper=PAPER, params={"models": MODELS})
def entropy(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Predictive entropy -sum_c p log p, averaged over models (DeepCore Eq. 2). O(S N C).

    The mean of the per-model entropies (not the entropy of the mean prediction), so that S = 1
    is exactly DeepCore's score. DeepCore adds 1e-6 inside the log; we use 0 log 0 = 0.
    """
    return entropy_score(_probs(ctx, models)).mean(axis=0)


@register("margin", family="uncertainty", paper=PAPER, params={"models": MODELS})
def margin(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Margin -(p_1 - p_2) between the two most probable classes, averaged over models.

    DeepCore Eq. 2 writes 1 - (p_1 - p_2); the constant does not change the ranking. A small
    margin (a sample between two classes) gets a high score and is kept first. O(S N C).
    """
    return margin_score(_probs(ctx, models)).mean(axis=0)
