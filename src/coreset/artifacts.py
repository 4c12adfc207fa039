"""Where each stage's artifacts live and how to read them back (one place, so stages agree).

    data/raw/          download: {train,test}_{images,labels}.npy (uint8 NHWC, int64) + meta.json
    models/attacker.pt attacker: model trained on the clean training set (adversarial scenario)
    data/train/        corrupt: the perturbed training split: images.npy, labels.npy (observed),
                       true_labels.npy, image_kind.npy ('' or the corruption/attack),
                       label_flipped.npy
    models/pretrain/   pretrain: seed<S>.pt, one per pretrain seed
    data/dynamics.npz  pretrain: correct (S, E, N) bool, loss (S, E, N) float32
    data/embed.npz     embed: features (N, D), probs (S, N, C), loss (S, N), grad_norm (S, N)
    data/scores/<r>.npz    score@r: score (N,)
    data/selected/<r>.npz  select@r: indices (k,), weights (k,)
    metrics/train/<r>-<seed>.json  train@r-seed: accuracy and the run's details
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coreset.io import atomic_path, load_json

RAW = Path("data/raw")
ATTACKER = Path("models/attacker.pt")
TRAIN = Path("data/train")
PRETRAIN = Path("models/pretrain")
DYNAMICS = Path("data/dynamics.npz")
EMBED = Path("data/embed.npz")
SCORES = Path("data/scores")
SELECTED = Path("data/selected")
TRAIN_METRICS = Path("metrics/train")
CURVES = Path("plots/curves")


@dataclass
class Meta:
    dataset: str
    num_classes: int
    image_size: int
    channels: int
    mean: list[float]
    std: list[float]


def meta() -> Meta:
    m = load_json(RAW / "meta.json")
    return Meta(m["dataset"], m["num_classes"], m["image_size"], m["channels"], m["mean"], m["std"])


def raw_split(split: str, mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the clean ``train`` or ``test`` split; images read-only memory-mapped
    when ``mmap`` (data/stream.py reads them batch by batch)."""
    images = np.load(RAW / f"{split}_images.npy", mmap_mode="r" if mmap else None)
    return images, np.load(RAW / f"{split}_labels.npy")


def class_counts(labels_file: Path, num_classes: int = 0) -> np.ndarray:
    """Samples per class in a labels file (memory-mapped: no copy of a large split)."""
    return np.bincount(np.load(labels_file, mmap_mode="r"), minlength=num_classes)


def raw_class_counts(dataset: str) -> tuple[np.ndarray, str] | None:
    """(training samples per class, their file) of data/raw when it holds ``dataset``; None
    before the download stage ran or when data/raw is a stale folder of another dataset."""
    meta_file = RAW / "meta.json"
    if not meta_file.is_file():
        return None
    m = load_json(meta_file)
    if m.get("dataset") != dataset:
        return None
    labels = RAW / "train_labels.npy"
    return class_counts(labels, m["num_classes"]), str(labels)


def training_set() -> dict[str, np.ndarray]:
    """The (perturbed) training split with its perturbation record; the images memory-mapped
    read-only (a dataset larger than memory is streamed, data/stream.py)."""
    names = ("images", "labels", "true_labels", "image_kind", "label_flipped")
    return {k: np.load(TRAIN / f"{k}.npy", mmap_mode="r" if k == "images" else None)
            for k in names}


def perturbed_mask(train: dict[str, np.ndarray]) -> np.ndarray:
    return (train["image_kind"] != "") | train["label_flipped"]


def save_model(path: Path, model, name: str, m: Meta) -> None:
    state = {"name": name, "num_classes": m.num_classes, "channels": m.channels,
             "image_size": m.image_size, "state_dict": model.state_dict()}
    save_checkpoint(path, state)


def save_checkpoint(path: Path, obj: object) -> None:
    """torch.save, atomically and byte-reproducibly. Saved by file name, torch names the zip's
    top folder after the (random) temp name, so the same tensors gave new bytes, a new DVC hash
    and a rerun of every downstream stage; saved to a file object, the folder is `archive/`."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_model(path: Path, device):
    """The saved model on ``device`` in eval mode."""
    import torch

    from coreset.models import create

    state = torch.load(path, map_location=device, weights_only=True)
    model = create(state["name"], state["num_classes"], state["channels"], state["image_size"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()
