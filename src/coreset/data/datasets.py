"""Datasets, all materialised in one on-disk format: uint8 images (N, H, W, C) + int64 labels.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (no network), a fixed stratified split.
- ``mnist``, ``fashion_mnist``, ``svhn``, ``cifar10``, ``cifar100``: torchvision; downloaded where
  a network exists, otherwise read from ``root``; offline without files -> DatasetUnavailable
  naming the folder and the files to put there.
- ``qmnist`` (DeepCore's QMNIST: 60k train, 60k test) likewise through torchvision.
- ``imagefolder``: any ``root/train/<class>/*`` + ``root/test|val/<class>/*`` tree (ImageNet),
  resized to ``image_size``; ``tinyimagenet``: Tiny-ImageNet's own layout (val/ labelled by
  val_annotations.txt). Both decoded by a process pool (data/image_trees.py); greyscale trees
  keep one channel.
- ``npy``: ``root/{train,test}_{images,labels}.npy`` brought by the user (uint8 NHWC images,
  integer labels), validated and copied chunk by chunk.

Large splits never sit in memory twice: :func:`materialise` writes the decoded images straight
into the output ``.npy`` files (``np.lib.format.open_memmap``), and the statistics in meta.json
are computed chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coreset.registry import Registry


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
    "qmnist": ("QMNIST", "QMNIST/raw/qmnist-{train,test}-{images-idx3-ubyte,labels-idx2-int}"),
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
    if name == "qmnist":  # (N, 8) QMNIST records; column 0 is the digit class
        labels = labels[:, 0]
    return np.ascontiguousarray(data, dtype=np.uint8), labels


def _image_tree_split(dataset: str, root: Path, image_size: int, out: Path | None,
                      workers: int) -> tuple:
    from coreset.data import image_trees

    lister = {"imagefolder": image_trees.imagefolder_files,
              "tinyimagenet": image_trees.tinyimagenet_files}[dataset]
    try:
        train, test, classes = lister(root)
        channels = image_trees.channels_of([f for f, _ in train + test], workers)
        arrays = []
        for name, files in (("train", train), ("test", test)):
            target = None if out is None else out / f"{name}_images.npy"
            images = image_trees.decode([f for f, _ in files], image_size, channels, workers,
                                        target)
            arrays.append((images, np.asarray([c for _, c in files], dtype=np.int64)))
    except image_trees.TreeError as err:  # raised in a worker too: one line naming the file
        raise DatasetUnavailable(str(err)) from None
    return arrays[0], arrays[1], classes


NPY_FILES = ("train_images", "train_labels", "test_images", "test_labels")


MIN_IMAGE_PX = 8  # digits' size; smaller images break the corruptions and every model
MAX_CLASSES = 100_000  # ImageNet-21k has 21 841; a label of 10**9 would allocate 8 GB of counts


def _read_npy(path: Path) -> np.ndarray:
    """A user's .npy memory-mapped, never unpickled: a pickle, an object array, a truncated or
    non-.npy file is one line naming it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetUnavailable(f"{path}: {' '.join(str(err).split())[:120]} is not allowed: a "
                                 "plain numeric .npy array (np.save of a uint8 or integer array, "
                                 "not a pickle or an object array)") from None


def _check_images(where: Path, x: np.ndarray, train: np.ndarray) -> None:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DatasetUnavailable(f"{where}: {x.dtype} {x.shape} is not allowed: uint8 images "
                                 f"(N, H, W, C) with C = 1 or 3")
    if x.shape[1:] != train.shape[1:]:
        raise DatasetUnavailable(f"{where}: image shape {x.shape[1:]} differs from "
                                 f"train_images' {train.shape[1:]}")
    if x.shape[1] != x.shape[2]:
        raise DatasetUnavailable(f"{where}: images are {x.shape[1]}x{x.shape[2]}: "
                                 f"square images are needed")
    if x.shape[1] < MIN_IMAGE_PX:
        raise DatasetUnavailable(f"{where}: {x.shape[1]}x{x.shape[2]} px images are not "
                                 f"allowed: at least {MIN_IMAGE_PX}x{MIN_IMAGE_PX} px")
    if len(x) == 0:
        raise DatasetUnavailable(f"{where}: an empty split (0 images) is not allowed: at least "
                                 "one image per class")


def _check_labels(ypath: Path, y: np.ndarray, n: int) -> None:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DatasetUnavailable(f"{ypath}: {y.dtype} {y.shape} is not allowed: integer "
                                 f"labels of shape ({n},)")
    low, high = (int(y.min()), int(y.max())) if len(y) else (0, 0)
    if low < 0 or high >= MAX_CLASSES:
        bad = low if low < 0 else high
        raise DatasetUnavailable(f"{ypath}: label {bad} is not allowed: labels are class ids "
                                 f"0..C-1 with C <= {MAX_CLASSES}")


def _npy_split(root: Path) -> tuple:
    """The user's four arrays, memory-mapped and validated (one line naming the file)."""
    missing = [f"{k}.npy" for k in NPY_FILES if not (root / f"{k}.npy").is_file()]
    if missing:
        raise DatasetUnavailable(f"dataset 'npy' needs {', '.join(missing)} in {root.resolve()} "
                                 f"(data.root in params.yaml)")
    files = {k: root.resolve() / f"{k}.npy" for k in NPY_FILES}
    arrays = {k: _read_npy(f) for k, f in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_images(files[f"{split}_images"], x, arrays["train_images"])
        _check_labels(files[f"{split}_labels"], y, len(x))
    train_classes = np.unique(arrays["train_labels"])
    num_classes = int(train_classes[-1]) + 1
    unknown = np.setdiff1d(np.unique(arrays["test_labels"]), train_classes)
    if len(unknown):  # the test file is the one to fix: the training split defines the classes
        raise DatasetUnavailable(f"{files['test_labels']}: label {int(unknown[0])} is not "
                                 f"allowed: a class of train_labels.npy ({len(train_classes)} "
                                 f"classes in 0..{num_classes - 1})")
    if len(train_classes) < num_classes:
        gap = int(np.setdiff1d(np.arange(num_classes), train_classes)[0])
        raise DatasetUnavailable(f"{files['train_labels']}: class {gap} has no training sample, "
                                 f"which is not allowed: labels 0..{num_classes - 1} each with "
                                 "a sample")
    return ((arrays["train_images"], np.asarray(arrays["train_labels"], dtype=np.int64)),
            (arrays["test_images"], np.asarray(arrays["test_labels"], dtype=np.int64)),
            [str(c) for c in range(num_classes)])


# Every loader: (name, root, *, test_fraction, split_seed, image_size, out, workers) ->
# ((train images, labels), (test images, labels), class names); each takes the options it uses.
# Adding a dataset is one registration here: NAMES, the params.yaml allowlist, is derived.
DATASETS: Registry[Callable[..., tuple]] = Registry("dataset")


@DATASETS.register("digits")
def _digits(name: str, root: Path, *, test_fraction: float, split_seed: int, **_: Any) -> tuple:
    s = load_digits_split(test_fraction, split_seed)
    return (s.train_images, s.train_labels), (s.test_images, s.test_labels), s.classes


def _torchvision(name: str, root: Path, **_: Any) -> tuple:
    return _torchvision_split(name, root)


def _image_tree(name: str, root: Path, *, image_size: int, out: Path | None, workers: int,
                **_: Any) -> tuple:
    return _image_tree_split(name, root, image_size, out, workers)


for _name in _TORCHVISION:
    DATASETS.register(_name)(_torchvision)
for _name in ("imagefolder", "tinyimagenet"):
    DATASETS.register(_name)(_image_tree)
DATASETS.register("npy")(lambda name, root, **_: _npy_split(root))
NAMES = DATASETS.names()


def load(dataset: str, root: str | Path, *, test_fraction: float = 0.2, split_seed: int = 0,
         image_size: int = 64, out: Path | None = None, workers: int = 1) -> Split:
    """Materialise ``dataset`` as a :class:`Split`. Image trees are decoded by ``workers``
    processes, into ``out/{train,test}_images.npy`` when ``out`` is given."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is unknown; known: {', '.join(NAMES)}")
    (xtr, ytr), (xte, yte), classes = DATASETS.get(dataset)(
        dataset, Path(root), test_fraction=test_fraction, split_seed=split_seed,
        image_size=image_size, out=out, workers=workers)
    return Split(xtr, ytr, xte, yte, classes)


_ROWS = 8192  # rows per chunk when copying or summarising large arrays


def materialise(dataset: str, root: str | Path, folder: str | Path, *, test_fraction: float = 0.2,
                split_seed: int = 0, image_size: int = 64, workers: int = 1,
                check: Callable[[Split], None] | None = None) -> Split:
    """Load ``dataset`` and write it to ``folder`` (see :func:`save`), atomically; image trees
    are decoded straight into the output files. ``check(split)`` runs before anything lands in
    ``folder``: if it raises, ``folder`` is left as it was."""
    from coreset.io import atomic_dir

    with atomic_dir(folder) as tmp:
        split = load(dataset, root, test_fraction=test_fraction, split_seed=split_seed,
                     image_size=image_size, out=tmp, workers=workers)
        if check is not None:
            check(split)
        write(split, tmp, dataset)
    return split


def save(split: Split, folder: str | Path, name: str) -> None:
    """Write the split as .npy arrays (memory-mappable) + meta.json, atomically."""
    from coreset.io import atomic_dir

    with atomic_dir(folder) as tmp:
        write(split, tmp, name)


def write(split: Split, folder: Path, name: str) -> None:
    """The four arrays as ``folder/<key>.npy`` (those already written there are kept) and
    meta.json with the per-channel statistics of the clean training images."""
    from coreset.io import save_json

    for key in NPY_FILES:
        _write_array(folder / f"{key}.npy", getattr(split, key))
    x = split.train_images
    mean, std = _channel_stats(x)
    save_json(folder / "meta.json", {
        "dataset": name,
        "classes": split.classes,
        "num_classes": len(split.classes),
        "image_size": int(x.shape[1]),
        "channels": int(x.shape[-1]),
        "n_train": len(x),
        "n_test": len(split.test_images),
        # per-channel statistics of the clean training images, used to normalise inputs
        "mean": mean.round(6).tolist(),
        "std": std.round(6).tolist(),
    })


def _write_array(path: Path, array: np.ndarray) -> None:
    if isinstance(array, np.memmap) and array.filename and Path(array.filename) == path.resolve():
        return  # decoded straight into place
    if not isinstance(array, np.memmap):
        np.save(path, array)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    for i in range(0, len(array), _ROWS):  # chunk by chunk: a memory map is never read whole
        out[i : i + _ROWS] = array[i : i + _ROWS]
    out.flush()


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``x / 255``, from exact integer sums over chunks (no float
    copy of the dataset)."""
    s = np.zeros(x.shape[-1], dtype=np.int64)
    ss = np.zeros(x.shape[-1], dtype=np.int64)
    for i in range(0, len(x), _ROWS):
        block = np.asarray(x[i : i + _ROWS], dtype=np.int64).reshape(-1, x.shape[-1])
        s += block.sum(axis=0)
        ss += np.square(block).sum(axis=0)
    count = len(x) * x.shape[1] * x.shape[2]
    mean = s / count
    var = np.maximum(ss / count - mean**2, 0.0)
    return mean / 255.0, np.sqrt(var) / 255.0
