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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coreset.data.stream import DeviceImages, Images
from coreset.params import TrainParams
from coreset.training.device import Normalizer
from coreset.training.dynamic import Budget, InfoBatch, Planner, budget, make_planner, progress
from coreset.training.dynamics import CHANGE, CHANGE_EPS, EVAL, FIELDS, record
from coreset.training.progress import EpochProgress


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
    flips = torch.rand(n, generator=gen) < 0.5 if mode == "crop_flip" \
        else torch.zeros(n, dtype=torch.bool)
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


class Clock:
    """Where a run stands for its lr schedule: ``fraction`` of the budget done (in [0, 1]) and
    ``epoch``, the fractional epoch in epochs of the nominal budget (what milestones count).

    Fixed-size epochs (no dynamic selection, RS2) derive both from the step count, exactly as a
    plain epochs run always has: fraction = step / total, epoch = step / steps_per_epoch
    (epochs budget) or fraction * train.epochs (steps budget). InfoBatch's epochs change size
    with the losses, so :meth:`set` places it at (epoch + step_in_epoch / steps_in_epoch) / E
    after each step, which ends the schedule on the last step all the same."""

    def __init__(self, b: Budget, nominal_epochs: int) -> None:
        self.budget, self.nominal = b, nominal_epochs
        self.manual: float | None = None

    def set(self, fraction: float) -> None:
        self.manual = fraction

    def at(self, step: int) -> tuple[float, float]:
        if self.manual is not None:
            return self.manual, self.manual * self.nominal
        fraction = progress(step, self.budget.total_steps)
        if self.budget.mode == "epochs":
            return fraction, step / self.budget.steps_per_epoch
        return fraction, fraction * self.nominal


def make_optimizer(model: nn.Module, p: TrainParams, clock: Clock):
    """SGD + a per-iteration schedule (cosine, multistep, step or constant) read off ``clock``."""
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum,
                          weight_decay=p.weight_decay, nesterov=p.nesterov and p.momentum > 0)

    def factor(step: int) -> float:
        fraction, epoch = clock.at(step)
        if p.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * fraction))
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
    # (E, N) float32 arrays keyed margin, prob, prob_margin (training.dynamics.record),
    # prob_change (TDDS's change over all classes, _Dynamics.record) and eval_prob (the eval-mode,
    # un-augmented assigned-label probability after each epoch, assigned_prob)
    dynamics: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0  # SGD steps taken (the run's manifest: coreset.training.manifest)
    samples_seen: int = 0  # training samples passed through the model, over all epochs

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
    logits, feats = [], []
    for _, out, h in predict_batches(model, images, norm, batch_size):
        logits.append(out)
        if features:
            feats.append(h)
    return torch.cat(logits), (torch.cat(feats) if features else None)


@torch.no_grad()
def predict_batches(model: nn.Module, images: torch.Tensor | Images, norm: Normalizer,
                    batch_size: int = 1024) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(first row, logits, penultimate features) batch by batch, in row order, as ``predict``
    computes them: a caller that reduces each batch (embed) never holds N x C logits."""
    images = _as_source(images)
    model.eval()
    # autocast off explicitly: an autocast region around the call (a caller's fast path) must
    # not turn the selectors' inputs into bfloat16
    with _Float32(), torch.autocast(images.device.type, enabled=False):
        start = 0
        for _, raw in images.batches(torch.arange(len(images)), batch_size):
            h = model.features(norm(norm.unit(raw)))
            yield start, model.classifier(h), h
            start += len(raw)


@torch.no_grad()
def assigned_prob(model: nn.Module, images: torch.Tensor | Images, labels: torch.Tensor,
                  norm: Normalizer, batch_size: int = 1024) -> np.ndarray:
    """(N,) float32: the softmax probability of the assigned label ``labels`` (on the device) of
    every un-augmented image, eval mode, float32 logits as ``predict`` computes them; the softmax
    in float64 as ``training.dynamics.record``. One inference pass, O(N C) memory at most one
    batch of logits. Dyn-Unc's reference reads this view after each epoch (He et al. 2023)."""
    out = torch.empty(len(labels), dtype=torch.float32, device=labels.device)
    for start, logits, _ in predict_batches(model, images, norm, batch_size):
        y = labels[start : start + len(logits)]
        p = F.softmax(logits.double(), 1).gather(1, y[:, None])[:, 0]
        out[start : start + len(logits)] = p.float()
    return out.cpu().numpy()


def _as_source(images: torch.Tensor | Images) -> Images:
    return DeviceImages(images) if isinstance(images, torch.Tensor) else images


def _training_autocast(device: torch.device):
    # bfloat16 autocast for training on CUDA only: CPU training stays exactly reproducible.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@dataclass
class _Dynamics:
    """Per-sample correctness, loss and logits of one epoch, scattered on the device, copied to
    the host once per epoch into (E, N) arrays; the logits become AUM's margin and the assigned
    label's probability there (training.dynamics.record, the same numbers for every device).

    TDDS's change over all classes is taken per batch, before a sample's logits are overwritten:
    the row still holds its previous epoch's logits, so the exact d_t costs O(B C) per batch and
    no second N x C array.

    After each epoch the eval-mode probability of the assigned label (``eval_prob``, taken by the
    caller with :func:`assigned_prob`) joins the epoch's row.

    Memory: exactly the N x C float32 logits (on the device) + E x N x 25 bytes on the host
    (correct 1 + loss, margin, prob, prob_margin, prob_change, eval_prob 4 each) + a few
    per-sample device vectors; :meth:`end_epoch` reads the logits in chunks (:func:`record_rows`),
    so no N x C host copy or float64 temporary exists (config.dynamics_bytes is the bound the
    params are checked against)."""

    correct: np.ndarray
    loss: np.ndarray
    extra: dict[str, np.ndarray]
    epoch_correct: torch.Tensor
    epoch_loss: torch.Tensor
    epoch_logits: torch.Tensor
    epoch_change: torch.Tensor
    seen: torch.Tensor
    labels: np.ndarray

    @classmethod
    def empty(cls, epochs: int, labels: torch.Tensor, num_classes: int) -> _Dynamics:
        n, device = len(labels), labels.device
        keys = [*FIELDS.values(), CHANGE[1], EVAL[1]]
        return cls(np.zeros((epochs, n), bool), np.zeros((epochs, n), np.float32),
                   {key: np.zeros((epochs, n), np.float32) for key in keys},
                   torch.zeros(n, dtype=torch.bool, device=device),
                   torch.zeros(n, dtype=torch.float32, device=device),
                   torch.zeros(n, num_classes, dtype=torch.float32, device=device),
                   torch.zeros(n, dtype=torch.float32, device=device),
                   torch.zeros(n, dtype=torch.bool, device=device),
                   labels.cpu().numpy())

    def record(self, idx: torch.Tensor, hit: torch.Tensor, ce: torch.Tensor,
               logits: torch.Tensor) -> None:
        self.epoch_correct[idx] = hit
        self.epoch_loss[idx] = ce
        change = prob_change(self.epoch_logits[idx], logits)
        self.epoch_change[idx] = torch.where(self.seen[idx], change, torch.zeros_like(change))
        self.seen[idx] = True
        self.epoch_logits[idx] = logits.float()

    def end_epoch(self, epoch: int, eval_prob: np.ndarray) -> None:
        self.correct[epoch] = self.epoch_correct.cpu().numpy()
        self.loss[epoch] = self.epoch_loss.cpu().numpy()
        for start, values in record_rows(self.epoch_logits, self.labels):
            for key, column in values.items():
                self.extra[key][epoch, start : start + len(column)] = column
        self.extra[CHANGE[1]][epoch] = self.epoch_change.cpu().numpy()
        self.extra[EVAL[1]][epoch] = eval_prob

    def into(self, result: FitResult, epochs: int) -> None:
        result.correct, result.loss = self.correct[:epochs], self.loss[:epochs]
        result.dynamics = {key: arr[:epochs] for key, arr in self.extra.items()}


RECORD_ELEMENTS = 1 << 18  # logits per chunk of record_rows: its float64 temporaries stay ~8 MiB


def record_rows(logits: torch.Tensor, labels: np.ndarray, elements: int = RECORD_ELEMENTS
                ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """training.dynamics.record over the rows of N x C ``logits``, ``elements // C`` rows at a
    time: (first row, record's arrays) per chunk. record() is per row, so the chunks equal the
    whole-array result bitwise, while its float64 temporaries (several N x C arrays at once, ~30
    GB at the ImageNet shape) shrink to a few ``elements`` x 8 bytes."""
    rows = max(1, elements // max(1, logits.shape[1]))
    for start in range(0, len(labels), rows):
        yield start, record(logits[start : start + rows].cpu().numpy(),
                            labels[start : start + rows])


def prob_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(B,) float32: TDDS's d_t = sum_c |p'_c (log(p'_c + eps) - log(p_c + eps))| between the
    softmax of logits ``before`` and ``after`` (B, C), in float64 as the reference's numpy does
    (Zhang et al. 2024, eps = 1e-8 as in its code)."""
    p_old, p_new = F.softmax(before.double(), 1), F.softmax(after.double(), 1)
    terms = p_new * (torch.log(p_new + CHANGE_EPS) - torch.log(p_old + CHANGE_EPS))
    return terms.abs().sum(1).float()


def _planner(p: TrainParams, n: int, seed: int) -> Planner:
    """The dynamic selection of ``p`` (the train section's ``dynamic``; pretrain and the attacker
    have none) over the positions 0..n-1 of the subset being trained on."""
    return make_planner(getattr(p, "dynamic", "none"), np.arange(n), epochs=p.epochs, seed=seed,
                        ratio=getattr(p, "dynamic_ratio", 1.0),
                        prune=getattr(p, "infobatch_prune", 0.0),
                        anneal=getattr(p, "infobatch_anneal", 0.0))


def _budget(p: TrainParams, planner: Planner) -> Budget:
    """The run's budget: the train section's ``budget``/``steps``; epochs for the others. The
    epoch size is RS2's per-epoch share; InfoBatch's nominal epoch is the whole pool."""
    size = planner.epoch_size(0)
    n = len(planner.pool) if size is None else size
    return budget(getattr(p, "budget", "epochs"), n, p.batch_size, p.epochs,
                  getattr(p, "steps", 0))


def _epoch_weights(positions: np.ndarray, w: np.ndarray, n: int,
                   device: torch.device) -> torch.Tensor | None:
    """The planner's loss weights as an (n,) device tensor indexed by position; None when they
    are all 1 (the plain mean, bitwise the loss of a run without dynamic selection)."""
    if np.all(w == 1):
        return None
    full = np.zeros(n, dtype=np.float32)
    full[positions] = w
    return torch.from_numpy(full).to(device)


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

    The protocol (a ``CoresetTrainParams``; other TrainParams train ``epochs`` passes):
    ``budget`` epochs or steps (training.dynamic.budget: the run stops at its total steps and the
    lr schedule spans them), ``dynamic`` none, rs2 or infobatch (training.dynamic.make_planner over
    the N samples: each epoch trains on the planner's samples, shuffled by the run's generator).
    The loss of a batch is sum(w * w_dyn * ce) / sum(w) (``weights`` w: Craig, GradMatch; 1 when
    absent; w_dyn the planner's weight, InfoBatch's rescaling, not renormalised away).
    ``record_dynamics`` stores each sample's correctness, loss and logit margins on its augmented
    mini-batch every epoch (what Forgetting and AUM need, as Toneva et al. and Pleiss et al.
    record them), and after each epoch the assigned label's probability on the un-augmented
    image in eval mode (``eval_prob``, :func:`assigned_prob`: Dyn-Unc's reference view; one
    inference pass over the N samples per epoch, which no RNG draw or weight depends on).
    """
    images = _as_source(images)
    device = images.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(images)
    planner = _planner(p, n, seed)
    b = _budget(p, planner)
    clock = Clock(b, p.epochs)
    opt, sched = make_optimizer(model, p, clock)
    dyn = _Dynamics.empty(b.epochs, labels, model.classifier.out_features) \
        if record_dynamics else None
    step = _train_step(model, opt, norm, device, compile_model=p.compile)
    losses = torch.zeros(n, dtype=torch.float32, device=device) \
        if isinstance(planner, InfoBatch) else None
    result, bar = FitResult(), EpochProgress(b.epochs, desc)
    steps_done, epoch = 0, 0
    # InfoBatch's pruned epochs take fewer steps than the nominal budget counts: it stops after
    # its E epochs; every other plan reaches both limits together
    while epoch < b.epochs and steps_done < b.total_steps:
        model.train()
        positions, w_dyn = planner.plan(epoch)
        m = len(positions)
        order = torch.from_numpy(positions)[torch.randperm(m, generator=gen)]
        draws = draw_augment(m, augment, gen)
        if draws is not None:
            draws = tuple(d.to(device) for d in draws)
        w_epoch = _epoch_weights(positions, w_dyn, n, device)
        in_epoch = min(math.ceil(m / p.batch_size), b.total_steps - steps_done)
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, hits: read per epoch
        start = 0
        for i, (idx, raw) in enumerate(images.batches(order[: in_epoch * p.batch_size],
                                                      p.batch_size)):
            x = norm.unit(raw)
            if draws is not None:
                x = augment_batch(x, *(d[..., start : start + len(idx)] for d in draws))
            start += len(idx)
            y = labels[idx]
            ce, hit, out = step(x, y, None if weights is None else weights[idx],
                                None if w_epoch is None else w_epoch[idx])
            if isinstance(planner, InfoBatch):
                clock.set((epoch + (i + 1) / in_epoch) / p.epochs)
            sched.step()
            sums += torch.stack([ce.sum(), hit.sum()]).double()
            if dyn is not None:
                dyn.record(idx, hit, ce, out)
            if losses is not None:
                losses[idx] = ce
        steps_done += in_epoch
        result.steps, result.samples_seen = steps_done, result.samples_seen + start
        total_loss, total_hits = sums.tolist()
        row = {"epoch": epoch + 1, "train_loss": total_loss / start,
               "train_acc": total_hits / start, "lr": opt.param_groups[0]["lr"]}
        if losses is not None:  # InfoBatch's scores: one copy per epoch, not per step
            seen = order[:start].numpy()
            planner.update(seen, losses.cpu().numpy()[seen])
        if test is not None:
            logits, _ = predict(model, test[0], norm)
            row["test_acc"] = float((logits.argmax(1) == test[1]).float().mean())
        if dyn is not None:
            dyn.end_epoch(epoch, assigned_prob(model, images, labels, norm))
        result.history.append(row)
        bar.update(row)
        if on_epoch is not None:
            on_epoch(row)
        epoch += 1
    bar.close()
    if dyn is not None:
        dyn.into(result, epoch)
    return result


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, norm: Normalizer,
                device: torch.device, compile_model: bool = False):
    """One SGD step on float NCHW images in [0, 1]; returns the per-sample loss and hits, on the
    device (detached). channels_last + bf16 autocast on CUDA; ``torch.compile`` when asked."""
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
             w_dyn: torch.Tensor | None = None):
        x = norm(x)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with _training_autocast(device):
            out = forward(x)
        out = out.float()
        ce = F.cross_entropy(out, y, reduction="none")
        loss = _batch_loss(ce, w, w_dyn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out = out.detach()
        return ce.detach(), out.argmax(1) == y, out

    return step


def _batch_loss(ce: torch.Tensor, w: torch.Tensor | None, w_dyn: torch.Tensor | None
                ) -> torch.Tensor:
    """sum(w * w_dyn * ce) / sum(w), w = 1 when absent: the plain mean without weights; InfoBatch's
    mean(w_dyn * ce) with unit static weights (dividing by sum(w_dyn) would undo its rescaling)."""
    if w_dyn is not None:
        ce = w_dyn * ce
    if w is None:
        return ce.mean()
    return (w * ce).sum() / w.sum().clamp_min(1e-12)
