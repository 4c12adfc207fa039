"""L-inf adversarial training images for the `corrupt` stage: PGD and FGSM.

The Moderate coreset paper (Xia et al., ICLR 2023, Sec. 5.3) perturbs the training set with PGD
(Madry et al., ICLR 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks") and FGSM
(Goodfellow et al., ICLR 2015, "Explaining and Harnessing Adversarial Examples") at eps = 8/255
against the pretrained model; its code used torchattacks' PGD (alpha 2/255, 10 steps, random start).

This is a short own implementation rather than torchattacks: torchattacks 3.5.1 pins old
`requests`/`urllib3` (it would downgrade them in our environment), draws its random start from
torch's global generator (not seedable per call), and wants its own normalisation handling; here
the caller's `normalize` is applied inside the forward pass and the random start comes from a
dedicated seeded generator. The result is quantised to uint8 and then projected back into the eps
ball, so it is a valid stored image AND a valid eps-bounded perturbation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from tqdm.auto import tqdm

from coreset.data.names import ATTACKS as METHODS  # torch-free: params validation uses it

BATCH_SIZE = 256  # attack's default batch


def attack(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "pgd",
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 10,
    normalize: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = BATCH_SIZE,
    device: str | torch.device = "cpu",
    seed: int = 0,
    disable_progress: bool = False,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Adversarial copies of uint8 images (N, H, W, C) that raise `model`'s cross-entropy.

    `model` maps normalize(x) (B, C, H, W), x in [0, 1], to logits. PGD: uniform random start in
    the eps ball (seeded by `seed`, drawn on the CPU so it does not depend on `device`), `steps`
    signed-gradient steps of size `alpha`, projection after each. FGSM: one step of size eps from
    the clean image. The model is put in eval mode (BatchNorm statistics must not drift on the
    attack batches) and its previous mode restored. Returns a new uint8 array, |adv - x| <=
    floor(eps * 255) per pixel.

    Each batch of `batch_size` images is attacked on its own (summed loss, eval mode), and the
    random starts are drawn batch after batch from one CPU generator: a new one seeded by `seed`,
    or `generator` when given (then `seed` is unused and the generator advances). So attacking
    consecutive chunks of a set in order, every chunk but the last a multiple of `batch_size`
    long, with one shared `generator` gives the same bytes as one call on the whole set: the
    `corrupt` stage streams a large split that way. Time O(N * steps) forward/backward passes;
    memory: the output (N images) plus one batch's tensors.
    """
    _check(images, labels, method, eps, alpha, steps, batch_size)
    normalize = normalize if normalize is not None else _identity
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    out = np.empty_like(images)
    was_training = model.training
    model.eval()
    try:
        batches = range(0, images.shape[0], batch_size)
        for start in tqdm(batches, desc=f"{method} attack", unit="batch", disable=disable_progress):
            x = _to_tensor(images[start : start + batch_size])
            y = torch.as_tensor(labels[start : start + batch_size], dtype=torch.long)
            start_noise = _random_start(x, eps, generator) if method == "pgd" else None
            x, y = x.to(device), y.to(device)
            forward = _loss_fn(model, normalize, y)
            if method == "pgd":
                adv = _pgd(forward, x, start_noise.to(device), eps, alpha, steps)
            else:
                adv = _fgsm(forward, x, eps)
            out[start : start + batch_size] = _quantise(adv.cpu(), x.cpu(), eps)
    finally:
        model.train(was_training)
    return out


def _pgd(forward, x: Tensor, noise: Tensor, eps: float, alpha: float, steps: int) -> Tensor:
    adv = (x + noise).clamp(0, 1)
    for _ in range(steps):
        adv = adv + alpha * _grad(forward, adv).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv


def _fgsm(forward, x: Tensor, eps: float) -> Tensor:
    return (x + eps * _grad(forward, x).sign()).clamp(0, 1)


def _grad(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x), x)
    return grad


def _loss_fn(model: nn.Module, normalize: Callable[[Tensor], Tensor], y: Tensor):
    # Summed, not averaged, loss: only the gradient's sign is used, and the sum keeps each
    # sample's gradient independent of the batch size.
    return lambda x: nnf.cross_entropy(model(normalize(x)), y, reduction="sum")


def _random_start(x: Tensor, eps: float, generator: torch.Generator) -> Tensor:
    return (torch.rand(x.shape, generator=generator) * 2 - 1) * eps


def _quantise(adv: Tensor, x: Tensor, eps: float) -> np.ndarray:
    """Round to uint8 levels, then re-project: rounding alone could leave the eps ball by 0.5."""
    bound = math.floor(eps * 255 + 1e-6)  # tolerance: 8/255 * 255 is 7.999... in floats
    orig = torch.round(x * 255)
    q = torch.round(adv * 255)
    q = torch.min(torch.max(q, orig - bound), orig + bound).clamp(0, 255)
    return q.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _to_tensor(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _identity(x: Tensor) -> Tensor:
    return x


def _check(
    images: np.ndarray,
    labels: np.ndarray,
    method: str,
    eps: float,
    alpha: float,
    steps: int,
    batch_size: int,
) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {np.shape(images)}"
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, C), got {got}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have C in {{1, 3}} channels, got shape {images.shape}")
    if np.shape(labels) != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},) to match images, got {np.shape(labels)}"
        )
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (images scaled to [0, 1]), got {eps!r}")
    if method == "pgd" and not alpha > 0:
        raise ValueError(f"alpha must be > 0 for pgd, got {alpha!r}")
    if method == "pgd" and (not isinstance(steps, Integral) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1 for pgd, got {steps!r}")
    if not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
