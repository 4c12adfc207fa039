"""Importance scores: how hard or how influential a sample is for the pretrained models.

All of them are O(N * C) time from the embed/pretrain artifacts, in row blocks (O(block * S * C)
temporaries, so the memory-mapped (S, N, C) probabilities are never copied whole), except
``grand`` with ``layers="all"``, which needs one per-sample backward pass through the whole
network.
"""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.scores.params import MODELS, Choice
from coreset.scores.registry import register

# how a never-learned sample counts in forgetting: 0 events, or E (above every forgettable one)
NEVER_LEARNED = ("max", "zero")


def _models(models: str) -> slice:
    """The pretrained models to average over: all, or the first only (``MODELS``)."""
    return slice(None) if models == "all" else slice(0, 1)


@register("el2n", family="importance", paper="Paul et al. 2021, Deep learning on a data diet",
          params={"models": MODELS})
def el2n(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """EL2N: ||softmax(x) - onehot(y)||_2, averaged over the pretrained models (Paul et al. 2021).

    The paper averages over 10 models trained a few epochs; here over the ``pretrain.seeds``
    models at ``pretrain.epochs``. High = hard; the default window keeps the highest. O(S N C).
    """
    return error_norms(ctx, _models(models)).mean(axis=0).astype(np.float64)


def error_norms(ctx: ScoringContext, models: slice = slice(None)) -> np.ndarray:
    """(S', N) float32 ||softmax - onehot(y)||_2 per model, computed in row blocks."""
    probs = ctx.probs[models]  # a view (of the memory map): nothing is read yet
    out = np.empty(probs.shape[:2], dtype=np.float32)
    for rows in ctx.blocks(row_bytes=8 * probs.shape[0] * ctx.num_classes):
        out[:, rows] = np.linalg.norm(probs[:, rows] - ctx.onehot(rows)[None], axis=2)
    return out


@register("loss", family="importance", paper="Heuristic selection slides (high-loss samples)",
          params={"models": MODELS})
def loss(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, models: str = "all"
) -> np.ndarray:
    """Cross-entropy of the pretrained models, averaged over models. High = hard. O(S N)."""
    return ctx.loss[_models(models)].mean(axis=0).astype(np.float64)


def last_layer_grad_norm(ctx: ScoringContext) -> np.ndarray:
    """(S, N) closed-form ||dL/d(W, b)|| of the last layer: ||p - y|| * sqrt(1 + ||h||^2).

    The weight gradient is the outer product (p - y) h^T, whose Frobenius norm is
    ||p - y|| ||h||; the bias gradient is p - y. Used when embed did not store it (tests).
    """
    if ctx.grad_norm is not None:
        return ctx.grad_norm
    g = error_norms(ctx)
    h2 = np.empty(ctx.n)
    for rows in ctx.blocks(row_bytes=8 * ctx.features.shape[1]):
        h2[rows] = np.square(ctx.features[rows], dtype=np.float64).sum(axis=1)
    return g * np.sqrt(1.0 + h2)[None]


@register("grand", family="importance", paper="Paul et al. 2021 (GraNd); DeepCore",
          needs_model=lambda params: params.get("layers") == "all",
          params={"layers": Choice(("last", "all")), "models": MODELS})
def grand(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    layers: str = "last",
    models: str = "all",
) -> np.ndarray:
    """GraNd: expected norm of the loss gradient, averaged over the pretrained models.

    ``layers="last"`` (DeepCore's choice) uses the closed-form last-layer gradient, O(S N C);
    ``layers="all"`` (the paper's and the slides' "loss-grad") backpropagates every sample
    through the whole network: one per-sample backward pass, O(S N * cost of a backward).
    """
    sel = _models(models)
    if layers == "last":
        return last_layer_grad_norm(ctx)[sel].mean(axis=0).astype(np.float64)
    if ctx.model is None:
        raise ValueError("grand with layers='all' needs the pretrained model (ctx.model)")
    from coreset.scores.backprop import full_grad_norms

    count = len(ctx.model.models) if models == "all" else 1
    return np.mean([full_grad_norms(ctx.model, model_index=m) for m in range(count)], axis=0)


@register("forgetting", family="importance", paper="Toneva et al. 2019, forgetting events",
          params={"never_learned": Choice(NEVER_LEARNED)})
def forgetting(
    ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, never_learned: str = "max"
) -> np.ndarray:
    """Number of forgetting events (correct at epoch t, wrong at t+1), averaged over models.

    Recorded on the augmented mini-batches of pretraining, as Toneva et al. and DeepCore do.
    ``never_learned="max"`` (the paper) ranks never-learned samples above every forgettable one
    (count E); ``"zero"`` counts them as 0 events. The default window keeps the most forgotten.
    O(S E N).
    """
    correct = ctx.correct.astype(np.int8)  # (S, E, N)
    events = ((correct[:, :-1] == 1) & (correct[:, 1:] == 0)).sum(axis=1).astype(np.float64)
    if never_learned == "max":
        events[~ctx.correct.any(axis=1)] = ctx.correct.shape[1]
    return events.mean(axis=0)
