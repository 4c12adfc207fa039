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

All three are O(S N C) time from ``ctx.probs``, computed in row blocks (O(block S C) float64
temporaries, O(S N) output); no model is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.params import MODELS
from coreset.scores.registry import register

PAPER = "DeepCore (Guo et al. 2022); Coleman et al. 2020"


def _per_model(ctx: ScoringContext, models: str,
               score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(S', N) ``score`` of the float64 probabilities of the models to average over, computed in
    row blocks (every score reduces each sample's row on its own: same bits as whole-array)."""
    probs = ctx.probs[slice(None) if models == "all" else slice(0, 1)]
    out = np.empty(probs.shape[:2])
    for rows in ctx.blocks(row_bytes=3 * 8 * probs.shape[0] * ctx.num_classes):
        out[:, rows] = score(probs[:, rows].astype(np.float64))
    return out


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
    return _per_model(ctx, models, least_confidence_score).mean(axis=0)


@register("entropy", family="uncertainty", paper=PAPER, params={"models": MODELS})
def entropy(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Predictive entropy -sum_c p log p, averaged over models (DeepCore Eq. 2). O(S N C).

    The mean of the per-model entropies (not the entropy of the mean prediction), so that S = 1
    is exactly DeepCore's score. DeepCore adds 1e-6 inside the log; we use 0 log 0 = 0.
    """
    return _per_model(ctx, models, entropy_score).mean(axis=0)


@register("margin", family="uncertainty", paper=PAPER, params={"models": MODELS})
def margin(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Margin -(p_1 - p_2) between the two most probable classes, averaged over models.

    DeepCore Eq. 2 writes 1 - (p_1 - p_2); the constant does not change the ranking. A small
    margin (a sample between two classes) gets a high score and is kept first. O(S N C).
    """
    return _per_model(ctx, models, margin_score).mean(axis=0)
