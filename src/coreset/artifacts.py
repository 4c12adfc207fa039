"""Where each stage's artifacts live and how to read them back (one place, so stages agree).

    data/raw/          download: {train,test}_{images,labels}.npy (uint8 NHWC, int64) + meta.json
    models/attacker.pt attacker: model trained on the clean training set (adversarial scenario)
    data/train/        corrupt: the perturbed training split: images.npy, labels.npy (observed),
                       true_labels.npy, image_kind.npy ('' or the corruption/attack),
                       label_flipped.npy
    models/pretrain/   pretrain: seed<S>.pt, one per pretrain seed
    data/dynamics.npz  pretrain: correct (S, E, N) bool, loss (S, E, N) float32, and (S, E, N)
                       float32 margin, prob, prob_margin, prob_change, eval_prob
    data/embed.npz     embed: features (N, D), probs (S, N, C), loss (S, N), grad_norm (S, N)
    data/scores/<r>.npz    score@r: score (N,)
    data/selected/<r>.npz  select@r: indices (k,), weights (k,)
    data/variants/<r>.json select@r: the exact variant (method, params, window, window_params,
                           balance; defaults filled in)
    metrics/train/<r>-<seed>.json  train@r-seed: accuracy and the run's details
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coreset.io import DamagedFile, atomic_path, load_json, load_npy

RAW = Path("data/raw")
ATTACKER = Path("models/attacker.pt")
TRAIN = Path("data/train")
PRETRAIN = Path("models/pretrain")
DYNAMICS = Path("data/dynamics.npz")
EMBED = Path("data/embed.npz")
SCORES = Path("data/scores")
SELECTED = Path("data/selected")
VARIANTS = Path("data/variants")  # select@r: the recipe's variant (params.Recipe.variant)
TRAIN_METRICS = Path("metrics/train")
CURVES = Path("plots/curves")
_STAGE_OF = ((Path("data/params.ok"), "check"), (RAW, "download"), (ATTACKER, "attacker"),
             (TRAIN, "corrupt"), (PRETRAIN, "pretrain"), (DYNAMICS, "pretrain"),
             (CURVES / "pretrain", "pretrain"), (EMBED, "embed"))


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
    images = load_npy(RAW / f"{split}_images.npy", mmap=mmap)
    return images, load_npy(RAW / f"{split}_labels.npy")


def class_counts(labels_file: Path, num_classes: int = 0) -> np.ndarray:
    """Samples per class in a labels file (memory-mapped: no copy of a large split)."""
    labels = load_npy(labels_file, mmap=True)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or \
            (len(labels) and (labels.min() < 0 or labels.max() >= max(num_classes, 1))):
        raise DamagedFile(labels_file, f"not class ids 0..{num_classes - 1} ({labels.dtype} "
                          f"{labels.shape})")
    return np.bincount(labels, minlength=num_classes)


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
    return {k: load_npy(TRAIN / f"{k}.npy", mmap=k == "images") for k in names}


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

    try:  # weights_only: a checkpoint is tensors and plain values, never arbitrary pickles
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError,
            zipfile.BadZipFile) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DamagedFile(path, f"not a readable weights-only checkpoint ({why})") from None
    try:
        model = create(state["name"], state["num_classes"], state["channels"],
                       state["image_size"])
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DamagedFile(path, f"not a checkpoint of this version ({why})") from None
    return model.to(device).eval()


def restore_command(path: str | Path) -> str:
    """The command that brings back the artifact ``path`` (the stage of dvc.yaml that writes
    it): from the DVC cache, or by rerunning the stage."""
    path = Path(os.path.relpath(Path(path).absolute()))
    parts, stem = path.parts, path.stem
    if path.is_relative_to(SCORES):
        stage = f"score@{stem}"
    elif path.is_relative_to(SELECTED) or path.is_relative_to(VARIANTS):
        stage = f"select@{stem}"
    elif path.is_relative_to(TRAIN_METRICS) or path.is_relative_to(CURVES / "train"):
        recipe, _, seed = stem.rpartition("-")
        stage = f"train_full@{seed}" if recipe == "full" else f"train@{stem}"
    else:
        stage = next((s for prefix, s in _STAGE_OF if path == prefix
                      or path.is_relative_to(prefix)), "")
    if not stage or ".." in parts:
        return "dvc checkout (or dvc repro)"
    return f"dvc checkout {path} (or dvc repro --force {stage})"

