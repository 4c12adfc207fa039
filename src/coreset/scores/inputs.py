"""The inputs a selector reads, assembled from the embed and pretrain artifacts, and the seeded
random streams of selection: shared by the score and select stages."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from coreset import artifacts
from coreset.io import load_npy, load_npz
from coreset.params import Params
from coreset.scores.context import ModelAccess, ScoringContext
from coreset.training.dynamics import ALL_FIELDS


def build_context(p: Params, with_model: bool) -> ScoringContext:
    """The embed/pretrain artifacts as a ScoringContext; the model is attached lazily."""
    return context_from_files(artifacts.EMBED, artifacts.DYNAMICS, artifacts.TRAIN / "labels.npy",
                              artifacts.meta().num_classes,
                              model=_model_access(p) if with_model else None)


def context_from_files(embed: Path, dynamics: Path, labels: Path, num_classes: int,
                       model: ModelAccess | None = None) -> ScoringContext:
    """A ScoringContext on embed.npz, dynamics.npz and the training labels (the benchmarks read
    synthetic ImageNet-shaped files through it too).

    The arrays are memory-mapped read-only (``load_npz(mmap=True)``): ImageNet-shaped softmax
    outputs alone are S N C float32 = 15 GB, so selectors read them in row blocks or per class,
    and the pages they touched stay reclaimable page cache, not process memory."""
    emb, dyn = load_npz(embed, mmap=True), load_npz(dynamics, mmap=True)
    # the per-epoch margins and probabilities (AUM, CCS, Dyn-Unc, TDDS): absent from a
    # dynamics.npz written before they were recorded, which those selectors then name
    extra = {name: dyn[key] for name, key in ALL_FIELDS.items() if key in dyn}
    return ScoringContext(
        labels=load_npy(labels), num_classes=num_classes, features=emb["features"],
        probs=emb["probs"], loss=emb["loss"], correct=dyn["correct"], epoch_loss=dyn["loss"],
        grad_norm=emb["grad_norm"], model=model, **extra,
    )


def _model_access(p: Params) -> ModelAccess:
    import torch

    from coreset.data.stream import StreamedImages
    from coreset.training.device import Normalizer, pick_device

    device = pick_device(p.device, p.cpu_threads)
    m = artifacts.meta()
    norm = Normalizer(m.mean, m.std, device)
    images = artifacts.training_set()["images"]  # memory-mapped: batches stream from disk
    labels = torch.from_numpy(load_npy(artifacts.TRAIN / "labels.npy")).to(device)

    def load_models() -> list:
        return [artifacts.load_model(artifacts.PRETRAIN / f"seed{s}.pt", device)
                for s in p.pretrain.seeds]

    def batches(batch_size: int = 256, indices: np.ndarray | None = None):
        idx_all = np.arange(len(labels)) if indices is None else np.asarray(indices)
        source = StreamedImages(images, device)
        stream = source.batches(torch.from_numpy(idx_all), batch_size)
        for start, (idx, raw) in zip(range(0, len(idx_all), batch_size), stream, strict=True):
            yield norm(norm.unit(raw)), labels[idx], idx_all[start : start + batch_size]

    return ModelAccess(device=device, load_models=load_models, batches=batches)


def selection_rng(p: Params, method: str, stream: int) -> np.random.Generator:
    """Seeded by the global seed and the method name: recipes of one method share draws."""
    return np.random.default_rng([p.seed, zlib.crc32(method.encode()), stream])
