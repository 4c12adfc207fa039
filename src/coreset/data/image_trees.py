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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

_GREY = frozenset({"1", "L", "LA", "I", "I;16", "F"})  # palette (P) images count as colour
_CHUNK = 256


class TreeError(RuntimeError):
    """The folder does not have the expected layout."""


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def imagefolder_files(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
    """(train files, test files, classes) of an ImageFolder tree; test is test/ or else val/.
    Listed as torchvision's ImageFolder lists them (classes and files sorted, the same image
    suffixes), except that links are never followed out of a class folder and one image file is
    never two samples (see :func:`_class_files`)."""
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise TreeError(
            f"imagefolder needs {root.resolve()}/train/<class>/<image> and "
            f"{root.resolve()}/test/<class>/<image> (or val/); set data.root in params.yaml"
        )
    owner: dict[tuple[int, int], str] = {}
    train, classes = _split_files(train_dir, owner)
    test, test_classes = _split_files(test_dir, owner)
    if test_classes != classes:
        raise TreeError(f"{test_dir} has classes {test_classes}, {train_dir} has {classes}")
    return train, test, classes


def _class_files(folder: Path) -> list[str]:
    """The image files under one class folder, sorted, without following links out of it:
    os.walk does not enter linked folders (a link to ``..`` loops, a link to another class
    relabels its images), so a linked folder is refused rather than skipped, and a linked file
    must resolve inside the class folder."""
    home = folder.resolve()
    files = []
    for top, dirs, names in sorted(os.walk(folder, followlinks=False)):
        for d in dirs:
            if os.path.islink(os.path.join(top, d)):
                raise TreeError(f"{os.path.join(top, d)}: a linked folder inside a class folder "
                                "is not allowed: it is not followed (it may loop or hold another "
                                "class's images); put the images themselves there")
        for name in sorted(names):
            path = os.path.join(top, name)
            if not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            if os.path.islink(path) and not Path(path).resolve().is_relative_to(home):
                raise TreeError(f"{path}: a link to {Path(path).resolve()} is not allowed: a "
                                f"linked image must stay inside its class folder {folder}")
            files.append(path)
    return files


def _split_files(split_dir: Path, owner: dict[tuple[int, int], str]
                 ) -> tuple[list[tuple[str, int]], list[str]]:
    """(file, class index) of one split and its classes; ``owner`` maps each file's identity
    (device, inode: links and hard links included) to its first path, across both splits."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise TreeError(f"{split_dir.resolve()}: no class folders: imagefolder needs "
                        f"{split_dir.resolve()}/<class>/<image>; set data.root in params.yaml")
    samples = []
    for index, name in enumerate(classes):
        files = _class_files(split_dir / name)
        if not files:
            raise TreeError(f"{split_dir / name}: no image files ({', '.join(IMAGE_SUFFIXES)}) "
                            "is not allowed: every class needs an image; set data.root in "
                            "params.yaml")
        for f in files:
            st = os.stat(f)
            if (st.st_dev, st.st_ino) in owner:
                raise TreeError(f"{f}: the same image file as {owner[st.st_dev, st.st_ino]} is "
                                "not allowed: one file is one sample of one class and split (no "
                                "silent relabelling)")
            owner[st.st_dev, st.st_ino] = f
        samples += [(f, index) for f in files]
    return samples, classes


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


MIN_PX = 8  # a 1x1 "image" is not a sample
MAX_PIXELS = 89_478_485  # PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS), as an error


@contextmanager
def _opened(path: str) -> Iterator[Any]:
    """``Image.open`` with every problem as one TreeError line naming the file: unreadable,
    truncated, a decompression bomb (PIL's warning counts as the error), too small."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise TreeError(f"{path}: {w}x{h} px is not allowed: at most {MAX_PIXELS} "
                                    "pixels (a decompression bomb?)")
                if min(w, h) < MIN_PX:
                    raise TreeError(f"{path}: {w}x{h} px is not allowed: images of at least "
                                    f"{MIN_PX}x{MIN_PX} px")
                yield im
    except TreeError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise TreeError(f"{path}: not a readable image ({' '.join(str(err).split())[:100]}); "
                        "replace or remove the file") from None


def _is_grey(path: str) -> bool:
    with _opened(path) as im:  # reads the header only
        return im.mode in _GREY


def _decode(args: tuple[list[str], int, str]) -> np.ndarray:
    from PIL import Image

    paths, size, mode = args
    out = np.empty((len(paths), size, size, 1 if mode == "L" else 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with _opened(path) as im:
            try:
                im = im.convert(mode).resize((size, size), Image.BILINEAR)
            except (OSError, ValueError, SyntaxError, EOFError) as err:  # a truncated file
                raise TreeError(f"{path}: not a readable image ({' '.join(str(err).split())}); "
                                "replace or remove the file") from None
            out[i] = np.asarray(im).reshape(out.shape[1:])
    return out


IN_FLIGHT_PER_WORKER = 4  # chunks decoded ahead of the writer, per worker


def _pool_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``map`` in order, over a process pool when there is more than one worker, with at most
    ``IN_FLIGHT_PER_WORKER x workers`` items submitted and not yet consumed. ``Pool.imap`` has
    no backpressure: when the consumer is slower than the decoders (a slow disk under the
    memory map, a busy core), its finished chunks pile up in the parent without bound; measured
    here, 4 GB of anonymous memory and growing while decoding the ImageNet-shaped tree."""
    if isinstance(items, Sized):
        workers = min(workers, len(items))
    if workers <= 1:  # no pool for one worker or one item: spawning costs more than it saves
        yield from map(fn, items)
        return
    window = IN_FLIGHT_PER_WORKER * workers
    source = iter(items)
    with get_context("spawn").Pool(workers) as pool:
        pending = deque(pool.apply_async(fn, (item,)) for item in islice(source, window))
        while pending:
            result = pending.popleft().get()  # in order; a worker's exception is raised here
            pending.extend(pool.apply_async(fn, (item,)) for item in islice(source, 1))
            yield result


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
