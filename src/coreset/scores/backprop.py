"""Per-sample gradients through the whole network, with ``torch.func`` (no hard-coded device).

Used by ``grand`` with ``layers="all"`` (Paul et al. 2021) and registered here as ``input_grad``.
Both functions run the models in eval mode: BatchNorm then normalises with its running
statistics, so every sample's loss depends on that sample only, which is what makes a
per-sample gradient well defined (and what ``vmap`` needs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from coreset.scores.context import ModelAccess, ScoringContext
from coreset.scores.params import BATCH_SIZE, MODELS
from coreset.scores.registry import register

if TYPE_CHECKING:  # torch is imported lazily, when a gradient is actually needed
    from torch.nn import Module


class _EvalMode:
    """Put a module in eval mode for the duration of a ``with`` block, then restore it."""

    def __init__(self, model: Module) -> None:
        self.model = model

    def __enter__(self) -> Module:
        self.was_training = self.model.training
        return self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def _per_sample_grad_fn(model: Module) -> Callable:
    """vmap(grad(loss of one sample)) over a batch, as a function of (params, buffers, x, y)."""
    import torch
    from torch.func import functional_call, grad, vmap

    def loss(params, buffers, x, y):
        logits = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, y.unsqueeze(0))

    return vmap(grad(loss), in_dims=(None, None, 0, 0))


def full_grad_norms(
    access: ModelAccess, model_index: int = 0, batch_size: int = 32
) -> np.ndarray:
    """||d CE(f(x_i), y_i) / d theta||_2 over ALL parameters theta, for every training sample.

    GraNd (Paul et al. 2021, "Deep learning on a data diet") at the pretrained weights. Per-sample
    gradients come from ``torch.func``: ``vmap(grad(functional_call(...)))`` over a batch, in eval
    mode (see the module docstring). DeepCore's GraNd uses only the last layer's closed-form
    gradient; that is ``grand`` with ``layers="last"``. Returns (N,) float64 in the order of
    ``access.batches``. Time O(N * cost of a backward pass); memory O(batch_size * P) for the P
    parameters' per-sample gradients (lower ``batch_size`` for large networks).
    """
    import torch

    model = access.models[model_index]
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    out = []
    with _EvalMode(model):
        fn = _per_sample_grad_fn(model)
        for x, y, _ in tqdm(access.batches(batch_size), desc="grad norms", leave=False,
                            disable=None):
            grads = fn(params, buffers, x.detach(), y)
            sq = sum(g.detach().flatten(1).double().square().sum(dim=1) for g in grads.values())
            out.append(torch.sqrt(sq).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def input_grad_norms(
    access: ModelAccess, model_index: int = 0, batch_size: int = 128
) -> np.ndarray:
    """||d CE(f(x_i), y_i) / d x_i||_2 for every training sample, (N,) in ``access.batches`` order.

    One backward pass per batch: in eval mode sample i's loss depends on x_i only, so the gradient
    of the SUM of the batch's losses w.r.t. the batch input is, row by row, each sample's own
    input gradient. Time O(N * cost of a backward pass); memory O(batch_size * input size).
    """
    import torch

    model = access.models[model_index]
    out = []
    with _EvalMode(model):
        for x, y, _ in tqdm(access.batches(batch_size), desc="input grads", leave=False,
                            disable=None):
            x = x.detach().clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
            out.append(g.flatten(1).double().norm(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@register(
    "input_grad", family="importance", needs_model=True,
    paper="Heuristic selection slides (high-influence: input-gradient norm)",
    params={"models": MODELS, "batch_size": BATCH_SIZE},
)
def input_grad(
    ctx: ScoringContext,
    *,
    rng: np.random.Generator,
    balance: bool,
    models: str = "all",
    batch_size: int = 128,
) -> np.ndarray:
    """High-"influence" score of the heuristic slides: ||dL/dx||, the loss's sensitivity to the
    input, averaged over the pretrained models (``models="all"``) or from the first one only.

    Not in DeepCore. Samples whose loss changes fastest with the pixels are kept first (window
    ``top``). Time O(S N * backward pass); memory O(batch_size * input size).
    """
    if ctx.model is None:
        raise ValueError("input_grad needs the pretrained models (ctx.model)")
    count = len(ctx.model.models) if models == "all" else 1
    return np.mean([input_grad_norms(ctx.model, m, batch_size) for m in range(count)], axis=0)
