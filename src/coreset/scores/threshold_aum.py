"""Pleiss et al. 2020's threshold-sample filter (their code's ``AUM_WTR``, "worse than random").

AUM alone ranks samples; Pleiss et al. also decide *how many* are mislabeled. A second training
run relabels a random set of threshold samples to an extra, fake class C: those samples are
mislabeled by construction, so their AUM shows what a mislabeled sample's AUM looks like. A
sample whose AUM is below the 99th percentile of the threshold samples' AUM is flagged. Two runs
with disjoint threshold sets give every sample at least one run in which it keeps its label; a
sample is removed when every such run flags it. As in the reference code (asappresearch/aum,
``examples/paper_replication``): each threshold set holds N // C samples (the paper writes
N / (C + 1)), consecutive slices of one random permutation; the runs train at a constant learning
rate (no decay: SGD, lr 0.1, momentum 0.9, Nesterov, weight decay 1e-4, batch 64, 150 epochs);
the margins are those of the augmented train-mode mini-batches, from the second epoch on.

The score is the sample's AUM averaged over its runs without the fake label; removed samples get
-inf (never ranked), so the window ``top`` keeps the highest-AUM samples that the filter keeps
and asks for no more than it keeps. Cost: ``runs`` extra trainings of the pretraining
architecture over the N samples (O(runs E N) forward/backward passes), O(runs E N) memory.
"""

from __future__ import annotations

import numpy as np

from coreset.models import AUTO as AUTO_MODEL
from coreset.models import MODELS as ARCHITECTURES
from coreset.scores.context import ScoringContext
from coreset.scores.params import Bool, Choice, Float, Int
from coreset.scores.registry import register

PAPER = "Pleiss et al. 2020, Identifying mislabeled data using the area under the margin ranking"


def threshold_sets(n: int, num_classes: int, runs: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """``runs`` disjoint sorted index sets of n // C samples: consecutive slices of one
    permutation (the reference's ``indicator_samples_set_idx`` 1, 2)."""
    size = n // num_classes
    if size < 1 or runs * size > n:
        raise ValueError(f"aum_threshold: {runs} threshold sets of n // C = {size} samples do not "
                         f"fit {n} samples")
    perm = rng.permutation(n)
    return [np.sort(perm[r * size : (r + 1) * size]) for r in range(runs)]


def worse_than_threshold(aum: np.ndarray, fake: np.ndarray, percentile: float) -> np.ndarray:
    """(N,) bool for one run: more than (100 - percentile) % of the threshold samples (``fake``)
    have a higher AUM than the sample, i.e. its AUM lies below their ``percentile``-th
    percentile (the reference's ``AUM_WTR``: mean(AUM_i < AUM_threshold) > 0.01). O(N log M)."""
    ref = np.sort(aum[fake])
    above = len(ref) - np.searchsorted(ref, aum, side="right")  # threshold AUMs > AUM_i
    return above / len(ref) > 1.0 - percentile / 100.0


def filter_score(aum: np.ndarray, fake: np.ndarray, percentile: float) -> np.ndarray:
    """(N,) from per-run AUMs ``aum`` (R, N) and threshold masks ``fake`` (R, N): the mean AUM
    over the runs where the sample kept its label; -inf where every such run flags it."""
    flagged = np.stack([worse_than_threshold(a, f, percentile)
                        for a, f in zip(aum, fake, strict=True)])
    own = ~fake
    counts = own.sum(axis=0)
    if (counts == 0).any():
        raise ValueError("aum_threshold: a sample is a threshold sample in every run")
    mean = np.where(own, aum, 0.0).sum(axis=0) / counts
    removed = (flagged & own).sum(axis=0) == counts
    return np.where(removed, -np.inf, mean)


def _train_margins(ctx: ScoringContext, observed: np.ndarray, seed: int, *, model: str,
                   epochs: int, batch_size: int, lr: float, weight_decay: float,
                   augment: bool) -> np.ndarray:
    """(E, N) float32 margins of one run with C + 1 outputs on the labels ``observed``."""
    import torch

    from coreset import artifacts
    from coreset.data.stream import as_images
    from coreset.models import create, resolve
    from coreset.params import TrainParams
    from coreset.training.device import Normalizer
    from coreset.training.loop import fit, resolve_augment

    m = artifacts.meta()
    device = ctx.model.device
    tp = TrainParams(model=model, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                     weight_decay=weight_decay, nesterov=True, schedule="constant",
                     milestones=(), gamma=0.1, step_size=1,
                     augment="auto" if augment else "none", report="final")
    torch.manual_seed(seed)
    net = create(resolve(model, m.channels, m.image_size), m.num_classes + 1, m.channels,
                 m.image_size).to(device)
    images = as_images(artifacts.training_set()["images"], device)
    result = fit(net, images, torch.from_numpy(observed).to(device), tp,
                 Normalizer(m.mean, m.std, device), seed=seed,
                 augment=resolve_augment(tp.augment, m.image_size, m.channels),
                 record_dynamics=True, desc="aum_threshold")
    return result.dynamics["margin"]


@register("aum_threshold", family="training dynamics", paper=PAPER, window="top",
          balance=False, needs_model=True,
          params={"model": Choice((AUTO_MODEL, *ARCHITECTURES)),
                  "epochs": Int(2), "batch_size": Int(1), "lr": Float(0.0, open_low=True),
                  "weight_decay": Float(0.0), "percentile": Float(0.0, 100.0, True, True),
                  "runs": Int(1), "augment": Bool()})
def aum_threshold(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
                  model: str = "auto", epochs: int = 150, batch_size: int = 64, lr: float = 0.1,
                  weight_decay: float = 1e-4, percentile: float = 99.0, runs: int = 2,
                  augment: bool = True) -> np.ndarray:
    """Pleiss et al.'s threshold-sample filter (module docstring), with the reference's defaults.
    ``model``: the architecture of the extra runs (``auto`` as pretraining resolves it);
    ``augment``: the pretraining's ``auto`` augmentation (crop + flip for colour >= 32 px).
    O(runs E N) passes."""
    sets = threshold_sets(ctx.n, ctx.num_classes, runs, rng)
    seeds = rng.integers(0, 2**31 - 1, size=runs)
    aum, fake = np.empty((runs, ctx.n)), np.zeros((runs, ctx.n), bool)
    for r, chosen in enumerate(sets):
        observed = ctx.labels.astype(np.int64).copy()
        observed[chosen] = ctx.num_classes  # the fake class
        margins = _train_margins(ctx, observed, int(seeds[r]), model=model, epochs=epochs,
                                 batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                 augment=augment)
        aum[r] = margins[1:].astype(np.float64).mean(axis=0)  # from the second epoch, as theirs
        fake[r, chosen] = True
    return filter_score(aum, fake, percentile)
