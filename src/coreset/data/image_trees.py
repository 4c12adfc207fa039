"""Image files on disk -> uint8 (N, S, S, C) arrays, decoded by a pool of processes.

Two layouts: ``imagefolder`` (``root/train/<class>/**/<image>`` + ``root/test|val/<class>/**``,
torchvision's ImageFolder) and ``tinyimagenet`` (Tiny-ImageNet as distributed:
``wnids.txt``, ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt``; its ``test/`` has no labels and is not read).

Decoding: the files are listed in a fixed (sorted) order and decoded in chunks by a
``multiprocessing`` pool whose ``imap`` returns the chunks in order, so the array does not depend
on the number of processes. Each chunk is written into a preallocated array, which is an
``np.lib.format.open_memmap`` file when ``out`` is given: peak memory is the chunks in flight,
not the dataset. Channels: 1 when every image of the tree is greyscale (mode L, I, 1 ...), else 3
(a few greyscale JPEGs inside ImageNet become RGB, a greyscale digit tree stays greyscale).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np

_GREY = frozenset({"1", "L", "LA", "I", "I;16", "F"})  # palette (P) images count as colour
_CHUNK = 256


class TreeError(RuntimeError):
    """The folder does not have the expected layout."""


def imagefolder_files(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
    """(train files, test files, classes) of an ImageFolder tree; test is test/ or else val/."""
    from torchvision.datasets import ImageFolder

    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise TreeError(
            f"imagefolder needs {root.resolve()}/train/<class>/<image> and "
            f"{root.resolve()}/test/<class>/<image> (or val/); set data.root in params.yaml"
        )
    train, test = ImageFolder(str(train_dir)), ImageFolder(str(test_dir))
    if test.classes != train.classes:
        raise TreeError(f"{test_dir} has classes {test.classes}, {train_dir} has {train.classes}")
    return train.samples, test.samples, train.classes


def tinyimagenet_files(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]],
                                             list[str]]:
    """(train files, val files, wnids) of Tiny-ImageNet's own layout; classes in sorted wnid
    order (what ImageFolder on train/ gives)."""
    wnids_file, annotations = root / "wnids.txt", root / "val" / "val_annotations.txt"
    for needed in (wnids_file, annotations, root / "train", root / "val" / "images"):
        if not needed.exists():
            raise TreeError(
                f"tinyimagenet needs {root.resolve()}/wnids.txt, train/<wnid>/images/*.JPEG, "
                f"val/images/*.JPEG and val/val_annotations.txt (the extracted "
                f"tiny-imagenet-200.zip); {needed} is missing; set data.root in params.yaml")
    classes = sorted(w for w in wnids_file.read_text().split() if w)
    index = {w: i for i, w in enumerate(classes)}
    train = []
    for wnid in classes:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise TreeError(f"tinyimagenet: {folder} is missing (wnids.txt lists {wnid})")
        train += [(str(f), index[wnid]) for f in sorted(folder.iterdir()) if f.is_file()]
    test = []
    for n, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise TreeError(f"{annotations}:{n}: expected '<file>\\t<wnid>...' with a wnid of "
                            f"wnids.txt, got {line[:80]!r}")
        test.append((str(root / "val" / "images" / fields[0]), index[fields[1]]))
    return train, sorted(test), classes


def _is_grey(path: str) -> bool:
    from PIL import Image

    with Image.open(path) as im:  # reads the header only
        return im.mode in _GREY


def _decode(args: tuple[list[str], int, str]) -> np.ndarray:
    from PIL import Image

    paths, size, mode = args
    out = np.empty((len(paths), size, size, 1 if mode == "L" else 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert(mode).resize((size, size), Image.BILINEAR)
            out[i] = np.asarray(im).reshape(out.shape[1:])
    return out


def _pool_map(fn: Callable, items: list, workers: int) -> Iterator:
    """``map`` in order, over a process pool when there is more than one worker and item."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with get_context("spawn").Pool(min(workers, len(items))) as pool:
        yield from pool.imap(fn, items)


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def channels_of(files: list[str], workers: int) -> int:
    """1 when every file is greyscale, else 3."""
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    return 1 if all(_pool_map(_all_grey, chunks, workers)) else 3


def _all_grey(paths: list[str]) -> bool:
    return all(map(_is_grey, paths))


def decode(files: list[str], size: int, channels: int, workers: int,
           out: Path | None = None) -> np.ndarray:
    """Decode ``files`` resized to ``size`` x ``size`` with ``channels`` channels, into an
    ``open_memmap`` at ``out`` (bounded memory) or an in-memory array."""
    shape = (len(files), size, size, channels)
    images = (np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=shape)
              if out is not None else np.empty(shape, np.uint8))
    mode = "L" if channels == 1 else "RGB"
    chunks = [(files[i : i + _CHUNK], size, mode) for i in range(0, len(files), _CHUNK)]
    for i, block in enumerate(_pool_map(_decode, chunks, workers)):
        images[i * _CHUNK : i * _CHUNK + len(block)] = block
    if out is not None:
        images.flush()
    return images
