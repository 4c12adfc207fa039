"""Synthetic datasets at the real shapes, written as files on disk so that the real decode path
of the ``download`` stage runs (a benchmark fixture, not a user dataset).

- ``imagenet``: an ImageFolder tree ``root/train/<wnid>/<wnid>_<i>.JPEG`` and
  ``root/val/<wnid>/ILSVRC2012_val_<i>.JPEG`` (``data.dataset: imagefolder``): by default
  1,281,167 train / 50,000 val images, 1,000 classes named like ImageNet's wnids ('n01440764'),
  16 px JPEGs (quality 90).
- ``cifar10`` / ``cifar100``: 50,000 train / 10,000 test, 32 px RGB, 10 / 100 classes, written
  in the ``npy`` layout ``root/{train,test}_{images,labels}.npy`` (``data.dataset: npy``, read
  memory-mapped and copied chunk by chunk). Not torchvision's cifar-10-batches-py pickles: the
  ``cifar10``/``cifar100`` loaders go through torchvision, which checks every batch file's MD5
  against the real CIFAR files and refuses any other content.

Learnable structure: each class has a fixed 4 x 4 x 3 colour template (uniform in [32, 224])
drawn from the seed, upsampled to the image size; an image is its class template scaled by a
random contrast in [0.7, 1.0] plus a random brightness shift (+-20) plus Gaussian pixel noise
(sigma ``--noise``, 24 by default), clipped to uint8. At sigma 24 one epoch of a small model
reaches ~100 % (the scale tables measure time and memory, not selection quality). The
nearest-template accuracy (3,000 images) at 16 px, 1,000 classes is 99.6 % at sigma 24, 91.4 %
at 160 and 52.8 % at 255; at 32 px, 10 classes it stays above 99.7 %: raise ``--noise`` (and
lower the size) for accuracies that separate selectors. Deterministic: image ``i`` of a split
comes from a generator seeded by (seed, split, first image of ``i``'s block), so the bytes do
not depend on the number of processes.
Streaming: blocks of ``BLOCK`` images are generated and written by ``--workers`` processes; the
parent holds only the class templates. O(N H W) time, O(BLOCK H W) memory per process.

    python benchmarks/synthetic.py imagenet /work/scratch/imagenet16
    python benchmarks/synthetic.py imagenet /tmp/in20k --n-train 20000 --n-test 2000 --size 8
    python benchmarks/synthetic.py cifar10 /tmp/cifar10
"""

from __future__ import annotations

import argparse
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

BLOCK = 4096  # images per generated block (one task of a worker)
SHAPES = {  # name -> (n_train, n_test, classes, image size)
    "imagenet": (1_281_167, 50_000, 1000, 16),
    "cifar10": (50_000, 10_000, 10, 32),
    "cifar100": (50_000, 10_000, 100, 32),
}
SPLIT_CODE = {"train": 0, "test": 1}


def wnids(classes: int) -> list[str]:
    """ImageNet-like folder names, increasing (so sorted folder order = class order):
    'n01440764' (ImageNet's first wnid) and then steps of 7,919."""
    return [f"n{1_440_764 + 7_919 * c:08d}" for c in range(classes)]


def templates(classes: int, size: int, seed: int) -> np.ndarray:
    """(classes, size, size, 3) float32 class templates: a 4 x 4 x 3 colour grid per class,
    nearest-upsampled to ``size``."""
    rng = np.random.default_rng([seed, 2])
    grid = rng.uniform(32, 224, size=(classes, 4, 4, 3)).astype(np.float32)
    reps = -(-size // 4)
    return np.repeat(np.repeat(grid, reps, 1), reps, 2)[:, :size, :size]


def labels_of(start: int, stop: int, classes: int) -> np.ndarray:
    """Image i belongs to class i mod classes: every class gets n // classes or one more."""
    return np.arange(start, stop, dtype=np.int64) % classes


def block(seed: int, split: str, start: int, stop: int, classes: int, size: int,
          channels: int = 3, noise: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start..stop`` of ``split``: (n, size, size, channels) uint8 and their labels."""
    rng = np.random.default_rng([seed, SPLIT_CODE[split], start])
    y = labels_of(start, stop, classes)
    base = templates(classes, size, seed)[y]
    n = stop - start
    contrast = rng.uniform(0.7, 1.0, size=(n, 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-20, 20, size=(n, 1, 1, 1)).astype(np.float32)
    pixels = rng.normal(0, noise, size=base.shape).astype(np.float32)
    x = np.clip(base * contrast + shift + pixels, 0, 255).astype(np.uint8)
    if channels == 1:
        x = x.mean(axis=3, keepdims=True).astype(np.uint8)
    return x, y


def _jpeg_block(args: tuple) -> int:
    """Generate one block and write it as JPEG files; returns the bytes written."""
    from PIL import Image

    root, seed, split, start, stop, classes, size, names, noise = args
    x, y = block(seed, split, start, stop, classes, size, noise=noise)
    folder = "train" if split == "train" else "val"
    written = 0
    for i, (img, c) in enumerate(zip(x, y, strict=True)):
        name = f"{names[c]}_{start + i}.JPEG" if split == "train" \
            else f"ILSVRC2012_val_{start + i + 1:08d}.JPEG"
        path = Path(root) / folder / names[c] / name
        Image.fromarray(img).save(path, quality=90)
        written += path.stat().st_size
    return written


def _npy_block(args: tuple) -> int:
    root, seed, split, start, stop, classes, size, _, noise = args
    x, y = block(seed, split, start, stop, classes, size, noise=noise)
    images = np.load(Path(root) / f"{split}_images.npy", mmap_mode="r+")
    images[start:stop] = x
    images.flush()
    labels = np.load(Path(root) / f"{split}_labels.npy", mmap_mode="r+")
    labels[start:stop] = y
    labels.flush()
    return x.nbytes + y.nbytes


def _tasks(root: Path, seed: int, split: str, n: int, classes: int, size: int,
           names: list[str], noise: float) -> list[tuple]:
    return [(str(root), seed, split, s, min(s + BLOCK, n), classes, size, names, noise)
            for s in range(0, n, BLOCK)]


def generate(kind: str, root: Path, *, n_train: int, n_test: int, classes: int, size: int,
             seed: int = 0, workers: int = 2, noise: float = 24.0) -> int:
    """Write the dataset under ``root``; returns the bytes written."""
    if min(n_train, n_test) < classes:
        raise SystemExit(f"--n-train {n_train} / --n-test {n_test} must be >= --classes "
                         f"{classes}: every class needs an image in both splits")
    names = wnids(classes)
    tasks = []
    for split, n in (("train", n_train), ("test", n_test)):
        if kind == "imagenet":
            for name in names:
                (root / ("train" if split == "train" else "val") / name).mkdir(
                    parents=True, exist_ok=True)
        else:
            root.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(root / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                      shape=(n, size, size, 3)).flush()
            np.lib.format.open_memmap(root / f"{split}_labels.npy", mode="w+", dtype=np.int64,
                                      shape=(n,)).flush()
        tasks += _tasks(root, seed, split, n, classes, size, names, noise)
    fn = _jpeg_block if kind == "imagenet" else _npy_block
    if workers <= 1:
        return sum(map(fn, tasks))
    with get_context("spawn").Pool(workers) as pool:
        return sum(pool.imap_unordered(fn, tasks))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(SHAPES))
    ap.add_argument("root", type=Path, help="output folder (data.root)")
    ap.add_argument("--n-train", type=int)
    ap.add_argument("--n-test", type=int)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--size", type=int, help="image side in px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--noise", type=float, default=24.0,
                    help="pixel noise sigma (default 24: classes easy to learn; 255 at 16 px and "
                         "1,000 classes: 53 %% nearest-template accuracy)")
    a = ap.parse_args(argv)
    n_train, n_test, classes, size = SHAPES[a.kind]
    n_train, n_test = a.n_train or n_train, a.n_test or n_test
    classes, size = a.classes or classes, a.size or size
    t0 = time.perf_counter()
    written = generate(a.kind, a.root, n_train=n_train, n_test=n_test, classes=classes,
                       size=size, seed=a.seed, workers=a.workers, noise=a.noise)
    print(f"{a.kind}: {n_train} train / {n_test} test, {classes} classes, {size} px -> {a.root}"
          f" ({written / 2**20:.1f} MiB of image data, {time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
