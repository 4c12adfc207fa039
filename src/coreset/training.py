"""The one training loop (pretrain, attacker and coreset training all use it).

Speed tricks, each named where it is used: the whole uint8 dataset lives on the device as one
tensor (no DataLoader workers, no per-sample Python); augmentation is done batched on the device;
bfloat16 autocast and channels_last on CUDA only; evaluation runs in large no-grad batches.
Determinism: one torch.Generator per run drives the shuffling and the augmentation, so on the CPU
the same seed gives bitwise-identical weights and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coreset.config import TrainParams


def pick_device(name: str = "auto", cpu_threads: int = 0) -> torch.device:
    """``auto`` -> CUDA when present, else Apple MPS, else CPU. Nothing hard-codes cuda.
    ``cpu_threads`` > 0 caps torch's CPU threads (0 keeps torch's default)."""
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Normalizer:
    """uint8 (B, H, W, C) on any device -> normalised float (B, C, H, W)."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in [0, 1]."""
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    def __call__(self, x_unit: torch.Tensor) -> torch.Tensor:
        """float NCHW in [0, 1] -> normalised."""
        return (x_unit - self.mean) / self.std


def resolve_augment(augment: str, image_size: int, channels: int) -> str:
    """``auto``: crop + flip for colour images >= 32 px (CIFAR, SVHN, ImageNet protocols); none for
    small greyscale digits, where a flip changes the class (a mirrored 3 is not a 3)."""
    if augment != "auto":
        return augment
    return "crop_flip" if channels == 3 and image_size >= 32 else "none"


def augment_batch(x: torch.Tensor, mode: str, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``, as torchvision's RandomCrop(padding=4)) and
    horizontal flip, on the device: one gather instead of a per-image Python loop."""
    if mode == "none":
        return x
    b, _, h, w = x.shape
    shifts = torch.randint(0, 2 * pad + 1, (2, b), generator=gen).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (shifts[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shifts[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bidx = torch.arange(b, device=x.device)[:, None, None, None]
    cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[bidx, cidx, rows, cols]
    if mode == "crop_flip":
        flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out


def make_optimizer(model: nn.Module, p: TrainParams, steps_per_epoch: int):
    """SGD + a per-iteration schedule (cosine, multistep, step or constant over epochs)."""
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum,
                          weight_decay=p.weight_decay, nesterov=p.nesterov and p.momentum > 0)
    total = p.epochs * steps_per_epoch

    def factor(step: int) -> float:
        epoch = step / steps_per_epoch
        if p.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * step / total))
        if p.schedule == "multistep":
            return p.gamma ** sum(epoch >= m for m in p.milestones)
        if p.schedule == "step":
            return p.gamma ** int(epoch // p.step_size)
        return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    correct: np.ndarray | None = None  # (E, N) bool, per-epoch training correctness
    loss: np.ndarray | None = None  # (E, N) float32, per-epoch training loss

    def accuracy(self, report: str) -> float:
        """Final-epoch test accuracy, or the best over epochs (test-set selection, as the Moderate
        reference reports) when ``report == 'best'``."""
        accs = [h["test_acc"] for h in self.history]
        return max(accs) if report == "best" else accs[-1]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, norm: Normalizer, batch_size: int = 1024,
            features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (and penultimate features) of uint8 images, eval mode, large batches."""
    model.eval()
    logits, feats = [], []
    for i in range(0, len(images), batch_size):
        x = norm(norm.unit(images[i : i + batch_size]))
        with _autocast(x.device):
            h = model.features(x)
            out = model.classifier(h)
        logits.append(out.float())
        if features:
            feats.append(h.float())
    return torch.cat(logits), (torch.cat(feats) if features else None)


def _autocast(device: torch.device):
    # bfloat16 autocast on CUDA only: CPU results stay exactly reproducible in float32.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    p: TrainParams,
    norm: Normalizer,
    *,
    seed: int,
    augment: str = "none",
    weights: torch.Tensor | None = None,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    record_dynamics: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` on uint8 ``images`` (N, H, W, C, on the device) with SGD.

    ``weights`` (N,) turn the loss into sum(w * ce) / sum(w) per batch (Craig, GradMatch).
    ``record_dynamics`` stores each sample's correctness and loss on its augmented mini-batch
    every epoch (what Forgetting needs, as Toneva et al. record it).
    """
    device = images.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(images)
    steps = math.ceil(n / p.batch_size)
    opt, sched = make_optimizer(model, p, steps)
    result = FitResult()
    if record_dynamics:
        result.correct = np.zeros((p.epochs, n), dtype=bool)
        result.loss = np.zeros((p.epochs, n), dtype=np.float32)
    bar = tqdm(range(p.epochs), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=gen)
        total_loss, total_correct = 0.0, 0
        for start in range(0, n, p.batch_size):
            idx = order[start : start + p.batch_size]
            dev_idx = idx.to(device)
            x = augment_batch(norm.unit(images[dev_idx]), augment, gen)
            y = labels[dev_idx]
            with _autocast(device):
                out = model(norm(x))
            ce = F.cross_entropy(out.float(), y, reduction="none")
            if weights is None:
                loss = ce.mean()
            else:
                w = weights[dev_idx]
                loss = (w * ce).sum() / w.sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            hit = out.argmax(1) == y
            total_loss += float(ce.detach().sum())
            total_correct += int(hit.sum())
            if record_dynamics:
                result.correct[epoch, idx.numpy()] = hit.cpu().numpy()
                result.loss[epoch, idx.numpy()] = ce.detach().cpu().numpy()
        row = {"epoch": epoch + 1, "train_loss": total_loss / n, "train_acc": total_correct / n,
               "lr": opt.param_groups[0]["lr"]}
        if test is not None:
            logits, _ = predict(model, test[0], norm)
            row["test_acc"] = float((logits.argmax(1) == test[1]).float().mean())
        result.history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
        if on_epoch is not None:
            on_epoch(row)
    return result
