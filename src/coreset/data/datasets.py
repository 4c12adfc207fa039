"""Datasets, all materialised in one on-disk format: uint8 images (N, H, W, C) + int64 labels.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (no network), a fixed stratified split.
- ``mnist``, ``fashion_mnist``, ``svhn``, ``cifar10``, ``cifar100``: torchvision; downloaded where
  a network exists, otherwise read from ``root``; offline without files -> DatasetUnavailable
  naming the folder and the files to put there.
- ``imagefolder``: any ``root/train/<class>/*`` + ``root/test|val/<class>/*`` tree (Tiny-ImageNet,
  ImageNet), resized to ``image_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not on disk and cannot be downloaded."""


@dataclass
class Split:
    train_images: np.ndarray  # (N, H, W, C) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


def load_digits_split(test_fraction: float, split_seed: int) -> Split:
    """scikit-learn's digits (1797 images, 8x8, values 0..16) scaled to 0..255, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = d.target.astype(np.int64)
    tr, te = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    tr, te = np.sort(tr), np.sort(te)
    return Split(images[tr], labels[tr], images[te], labels[te], [str(c) for c in range(10)])


# name -> (torchvision class name, files expected under root, how to get arrays and labels)
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"),
    "fashion_mnist": ("FashionMNIST",
                      "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/ (extracted cifar-10-python.tar.gz)"),
    "cifar100": ("CIFAR100", "cifar-100-python/ (extracted cifar-100-python.tar.gz)"),
    "svhn": ("SVHN", "train_32x32.mat and test_32x32.mat"),
}


def _torchvision_split(name: str, root: Path) -> tuple:
    import torchvision.datasets as tvd

    cls_name, files = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)

    def build(train: bool, download: bool):
        if name == "svhn":
            return cls(str(root), split="train" if train else "test", download=download)
        return cls(str(root), train=train, download=download)

    out = []
    for train in (True, False):
        try:
            ds = build(train, download=False)
        except (RuntimeError, FileNotFoundError, OSError):
            try:
                ds = build(train, download=True)
            except Exception as err:  # no network: say where the files go
                raise DatasetUnavailable(
                    f"dataset {name!r} is not in {root} and could not be downloaded ({err}). "
                    f"Put {files} under {root.resolve()} (data.root in params.yaml)."
                ) from None
        out.append(_arrays(name, ds))
    classes = [str(c) for c in getattr(ds, "classes", range(int(out[0][1].max()) + 1))]
    return out[0], out[1], classes


def _arrays(name: str, ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    if name == "svhn":  # (N, C, H, W); label 10 already mapped to 0 by torchvision
        data = data.transpose(0, 2, 3, 1)
    if data.ndim == 3:
        data = data[..., None]
    labels = np.asarray(ds.labels if name == "svhn" else ds.targets, dtype=np.int64)
    return np.ascontiguousarray(data, dtype=np.uint8), labels


def _imagefolder_split(root: Path, image_size: int) -> tuple:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DatasetUnavailable(
            f"imagefolder needs {root.resolve()}/train/<class>/<image> and "
            f"{root.resolve()}/test/<class>/<image> (or val/); set data.root in params.yaml"
        )

    def load(folder: Path, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        ds = ImageFolder(str(folder))
        if classes is not None and ds.classes != classes:
            raise DatasetUnavailable(f"{folder} has classes {ds.classes}, train has {classes}")
        images = np.empty((len(ds), image_size, image_size, 3), dtype=np.uint8)
        for i, (path, _) in enumerate(ds.samples):
            with Image.open(path) as im:
                im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images[i] = np.asarray(im)
        return images, np.asarray(ds.targets, dtype=np.int64), ds.classes

    xtr, ytr, classes = load(train_dir, None)
    xte, yte, _ = load(test_dir, classes)
    return (xtr, ytr), (xte, yte), classes


DATASETS: dict[str, Callable[..., Split]] = {}


def load(dataset: str, root: str | Path, *, test_fraction: float = 0.2, split_seed: int = 0,
         image_size: int = 64) -> Split:
    """Materialise ``dataset`` as a :class:`Split`."""
    root = Path(root)
    if dataset == "digits":
        return load_digits_split(test_fraction, split_seed)
    if dataset in _TORCHVISION:
        (xtr, ytr), (xte, yte), classes = _torchvision_split(dataset, root)
    elif dataset == "imagefolder":
        (xtr, ytr), (xte, yte), classes = _imagefolder_split(root, image_size)
    else:
        raise ValueError(f"dataset {dataset!r} is unknown; known: {', '.join(NAMES)}")
    return Split(xtr, ytr, xte, yte, classes)


NAMES = ("digits", *_TORCHVISION, "imagefolder")


def save(split: Split, folder: str | Path, name: str) -> None:
    """Write the split as .npy arrays (memory-mappable) + meta.json, atomically."""
    from coreset.io import atomic_dir, save_json

    with atomic_dir(folder) as tmp:
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            np.save(tmp / f"{key}.npy", getattr(split, key))
        x = split.train_images
        scaled = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
        save_json(tmp / "meta.json", {
            "dataset": name,
            "classes": split.classes,
            "num_classes": len(split.classes),
            "image_size": int(x.shape[1]),
            "channels": int(x.shape[-1]),
            "n_train": len(x),
            "n_test": len(split.test_images),
            # per-channel statistics of the clean training images, used to normalise inputs
            "mean": scaled.mean(axis=0).round(6).tolist(),
            "std": scaled.std(axis=0).round(6).tolist(),
        })
