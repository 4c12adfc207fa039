"""The one training loop (pretrain, attacker and coreset training all use it).

Speed tricks, each named where it is used: the uint8 dataset lives on the device as one tensor
when it fits, else it is streamed from its memory map with a prefetch thread (data/stream.py); no
DataLoader workers, no per-sample Python; augmentation is drawn once per epoch and applied batched
on the device; the loss, the hits and the per-sample dynamics are accumulated on the device and
read once per epoch (no host sync per step); bfloat16 autocast and channels_last for training on
CUDA only; ``torch.compile`` when asked for. Inference (:func:`predict`: the features, outputs and
losses every selector reads) is float32 on every device, so a selection does not depend on the
device's precision. Determinism: one torch.Generator per run drives the shuffling and the
augmentation, so on the CPU the same seed gives bitwise-identical weights and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coreset.config import TrainParams
from coreset.data.stream import DeviceImages, Images
from coreset.progress import EpochProgress


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


def draw_augment(n: int, mode: str, gen: torch.Generator, pad: int = 4
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One epoch's augmentation draws for samples in shuffled order: crop offsets (2, n) in
    [0, 2 * pad] and flips (n,) bool. Drawn once per epoch, so the device gets one copy per epoch
    instead of one per step, and every batch source applies the very same draws."""
    if mode == "none":
        return None
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5 if mode == "crop_flip" else torch.zeros(n, bool)
    return shifts, flips


def augment_batch(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor,
                  pad: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``, as torchvision's RandomCrop(padding=4)) and
    horizontal flip of float NCHW ``x``, on its device: one ``gather`` over the flattened padded
    images (a flip reverses the crop's columns) instead of a per-image loop; ~7x faster on a CPU
    than advanced indexing with four broadcast index tensors.
    ``shifts`` (2, B) are the crop's row/column offsets, ``flips`` (B,) which images to mirror."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    cols = shifts[1][:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    rows = shifts[0][:, None] + torch.arange(h, device=x.device)
    idx = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).reshape(b, 1, h * w)
    return padded.reshape(b, c, -1).gather(2, idx.expand(b, c, h * w)).reshape(b, c, h, w)


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


class _Float32:
    """Full float32 inside: no autocast, and no TF32 (10-bit mantissa) in CUDA convolutions and
    matmuls, which torch enables for cuDNN convolutions by default."""

    def __enter__(self) -> None:
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor | Images, norm: Normalizer,
            batch_size: int = 1024, features: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (and penultimate features) of uint8 images, eval mode, large batches, in float32
    on every device (what the selectors read must not depend on the device's precision)."""
    images = _as_source(images)
    model.eval()
    logits, feats = [], []
    # autocast off explicitly: an autocast region around the call (a caller's fast path) must
    # not turn the selectors' inputs into bfloat16
    with _Float32(), torch.autocast(images.device.type, enabled=False):
        for _, raw in images.batches(torch.arange(len(images)), batch_size):
            h = model.features(norm(norm.unit(raw)))
            logits.append(model.classifier(h))
            if features:
                feats.append(h)
    return torch.cat(logits), (torch.cat(feats) if features else None)


def _as_source(images: torch.Tensor | Images) -> Images:
    return DeviceImages(images) if isinstance(images, torch.Tensor) else images


def _training_autocast(device: torch.device):
    # bfloat16 autocast for training on CUDA only: CPU training stays exactly reproducible.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@dataclass
class _Dynamics:
    """Per-sample correctness and loss of one epoch, scattered on the device, copied to the host
    once per epoch into (E, N) arrays."""

    correct: np.ndarray
    loss: np.ndarray
    epoch_correct: torch.Tensor
    epoch_loss: torch.Tensor

    @classmethod
    def empty(cls, epochs: int, n: int, device: torch.device) -> _Dynamics:
        return cls(np.zeros((epochs, n), bool), np.zeros((epochs, n), np.float32),
                   torch.zeros(n, dtype=torch.bool, device=device),
                   torch.zeros(n, dtype=torch.float32, device=device))

    def record(self, idx: torch.Tensor, hit: torch.Tensor, ce: torch.Tensor) -> None:
        self.epoch_correct[idx] = hit
        self.epoch_loss[idx] = ce

    def end_epoch(self, epoch: int) -> None:
        self.correct[epoch] = self.epoch_correct.cpu().numpy()
        self.loss[epoch] = self.epoch_loss.cpu().numpy()


def fit(
    model: nn.Module,
    images: torch.Tensor | Images,
    labels: torch.Tensor,
    p: TrainParams,
    norm: Normalizer,
    *,
    seed: int,
    augment: str = "none",
    weights: torch.Tensor | None = None,
    test: tuple[torch.Tensor | Images, torch.Tensor] | None = None,
    record_dynamics: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` with SGD on uint8 ``images`` (N, H, W, C): a tensor on the device or a
    batch source (data/stream.py); ``labels`` (and ``weights``) on the same device.

    ``weights`` (N,) turn the loss into sum(w * ce) / sum(w) per batch (Craig, GradMatch).
    ``record_dynamics`` stores each sample's correctness and loss on its augmented mini-batch
    every epoch (what Forgetting needs, as Toneva et al. record it).
    """
    images = _as_source(images)
    device = images.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(images)
    opt, sched = make_optimizer(model, p, math.ceil(n / p.batch_size))
    dyn = _Dynamics.empty(p.epochs, n, device) if record_dynamics else None
    step = _train_step(model, opt, norm, device, compile_model=p.compile)
    result, progress = FitResult(), EpochProgress(p.epochs, desc)
    for epoch in range(p.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        draws = draw_augment(n, augment, gen)
        if draws is not None:
            draws = tuple(d.to(device) for d in draws)
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, hits: read per epoch
        start = 0
        for idx, raw in images.batches(order, p.batch_size):
            x = norm.unit(raw)
            if draws is not None:
                x = augment_batch(x, *(d[..., start : start + len(idx)] for d in draws))
            start += len(idx)
            y = labels[idx]
            ce, hit = step(x, y, None if weights is None else weights[idx])
            sched.step()
            sums += torch.stack([ce.sum(), hit.sum()]).double()
            if dyn is not None:
                dyn.record(idx, hit, ce)
        total_loss, total_hits = sums.tolist()
        row = {"epoch": epoch + 1, "train_loss": total_loss / n, "train_acc": total_hits / n,
               "lr": opt.param_groups[0]["lr"]}
        if test is not None:
            logits, _ = predict(model, test[0], norm)
            row["test_acc"] = float((logits.argmax(1) == test[1]).float().mean())
        if dyn is not None:
            dyn.end_epoch(epoch)
        result.history.append(row)
        progress.update(row)
        if on_epoch is not None:
            on_epoch(row)
    progress.close()
    if dyn is not None:
        result.correct, result.loss = dyn.correct, dyn.loss
    return result


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, norm: Normalizer,
                device: torch.device, compile_model: bool = False):
    """One SGD step on float NCHW images in [0, 1]; returns the per-sample loss and hits, on the
    device (detached). channels_last + bf16 autocast on CUDA; ``torch.compile`` when asked."""
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None):
        x = norm(x)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with _training_autocast(device):
            out = forward(x)
        ce = F.cross_entropy(out.float(), y, reduction="none")
        loss = ce.mean() if w is None else (w * ce).sum() / w.sum().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return ce.detach(), out.detach().argmax(1) == y

    return step
