"""The `corrupt` stage's scenario, streamed: a perturbed copy of a training split written chunk by
chunk from a memory-mapped source into a destination array (an ``open_memmap`` file), so that the
stage never holds the split in memory.

Corrupted images and adversarial images are disjoint random subsets; label noise is drawn
independently, so a sample can be both mislabeled and corrupted (the paper's mixed scenario).
All randomness comes from one ``numpy`` generator seeded by ``corrupt.seed``, drawn in a fixed
order (subset permutation, corruptions, label noise), plus the attack's own seeded torch generator
for its random starts; the result does not depend on the chunk size.

Memory: rows are read with ``os.preadv`` (:class:`~coreset.data.stream.RowReader`) and written
with ``os.pwritev`` (:class:`Sink`), never through the source's or the destination's memory map:
pages of a file map count in the process's RSS, which would otherwise grow by the split's size
twice over (and by a whole page-cache folio per scattered row). Peak memory is then
O(chunk_bytes) for the images, plus one corruption chunk's float working set (corruptions'
_CHUNK_PIXELS; ~300 MB, motion blur's convolution the largest, whatever N), plus O(N) small
per-sample arrays (order, labels, the '<U16' kind: ~100 bytes a sample, ~130 MB for ImageNet's
1.28 M), plus the attack model. Measured on a 205 MB split (50,000 x 64 x 64 x 1, images rate
0.2, label noise 0.2): peak RSS growth 338 MB here, 630 MB for the in-memory stage it replaced.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from coreset.data.sampling import count as budget
from coreset.data.stream import RowReader
from coreset.params import Corrupt

CHUNK_BYTES = 64 << 20  # images per copy / attack chunk: 64 MiB worth

Attack = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Source:
    """``src[rows]`` -> a new uint8 array of those rows, read with ``os.preadv`` when ``images``
    is an ``.npy`` memory map (its pages never enter the process's RSS), else indexed."""

    def __init__(self, images: np.ndarray) -> None:
        self.shape, self.dtype = images.shape, images.dtype
        self._reader = RowReader(images)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return self._reader.read(rows)


class Sink:
    """``dst[rows] = values`` into an array. When it is a whole ``.npy`` file map (``open_memmap``)
    the rows are written with ``os.pwritev`` into its file, consecutive rows coalesced into one
    call, not through the map: pages of a file map count in the process's RSS, and Linux maps
    whole page-cache folios around each fault (measured here: 16 MB of scattered 4 KiB rows
    written through the map grew RSS by 182 MB). The file's page cache is the map's, so the
    array sees the writes. Any other array is assigned in memory."""

    def __init__(self, images: np.ndarray) -> None:
        self.images, self.shape = images, images.shape
        self.row_shape, self.dtype = images.shape[1:], images.dtype
        self.row_bytes = int(np.prod(self.row_shape)) * images.itemsize
        whole_file = (isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap)
                      and images.flags.c_contiguous and images.flags.writeable
                      and hasattr(os, "pwritev"))
        self.fd = os.open(images.filename, os.O_WRONLY) if whole_file else None
        self.offset = images.offset if whole_file else 0

    def __setitem__(self, rows: np.ndarray | slice, values: np.ndarray) -> None:
        if self.fd is None:
            self.images[rows] = values
            return
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.shape[0]))
        rows = np.asarray(rows, dtype=np.int64)
        values = np.broadcast_to(np.asarray(values, dtype=self.dtype),
                                 (len(rows), *self.row_shape))
        if not len(rows):
            return
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        order = np.argsort(rows, kind="stable")  # duplicates: the last one wins, as in numpy
        if np.any(np.diff(order) != 1):
            rows, values = rows[order], values[order]
        values = np.ascontiguousarray(values)  # no copy for the usual sorted, contiguous rows
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        flat = values.reshape(len(rows), -1).view(np.uint8)
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            view = memoryview(flat[a:b].reshape(-1))
            start = self.offset + int(rows[a]) * self.row_bytes
            done = 0
            while done < len(view):
                done += os.pwritev(self.fd, [view[done:]], start + done)

    def close(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()


def perturb_into(
    src: np.ndarray,
    labels: np.ndarray,
    dst: np.ndarray,
    c: Corrupt,
    num_classes: int,
    attack: Attack | None = None,
    attack_batch: int = 256,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write the perturbed copy of ``src`` (N, H, W, C) into ``dst`` (same shape and dtype, e.g.
    an ``open_memmap``) and return (observed labels, image_kind, label_flipped).

    ``src`` is never modified, nor read whole: the clean rows are copied ``chunk_bytes`` at a
    time, then the chosen rows are corrupted (:func:`~coreset.data.corruptions.corrupt_into`,
    its own bounded chunks) and the adversarial rows attacked in chunks of a multiple of
    ``attack_batch`` rows. ``attack(images, labels)`` is called on those chunks in order and must
    give, chunk after chunk, what one call on all the adversarial rows would (the stage's
    :func:`~coreset.data.adversarial.attack` with one shared generator and ``batch_size =
    attack_batch`` does); it is needed only when ``c.adversarial.rate > 0``. ``labels`` are the
    clean labels (the attack's targets). Time O(N * H * W * C) plus the corruptions and the
    attack; memory O(chunk_bytes) of images plus O(N) per-sample arrays (see the module doc).
    """
    n = len(labels)
    if src.shape[0] != n or dst.shape != src.shape or dst.dtype != src.dtype:
        raise ValueError(f"src {src.shape} {src.dtype}, dst {dst.shape} {dst.dtype} and labels "
                         f"({n},) do not match")
    rng = np.random.default_rng(c.seed)
    kind = np.full(n, "", dtype="<U16")
    order = rng.permutation(n)
    n_img = budget(n, c.images.rate)
    n_adv = budget(n, c.adversarial.rate)
    img_idx, adv_idx = np.sort(order[:n_img]), np.sort(order[n_img : n_img + n_adv])
    del order
    source, sink = Source(src), Sink(dst)
    row_bytes = max(1, sink.row_bytes)
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, n, step):
        stop = min(n, start + step)
        sink[start:stop] = source[np.arange(start, stop)]
    if n_img:
        from coreset.data.corruptions import corrupt_into

        kind[img_idx] = corrupt_into(source, sink, img_idx, 1.0, list(c.images.types),
                                     c.images.severity, rng)
    if n_adv:
        if attack is None:
            raise ValueError("corrupt.adversarial.rate > 0 needs an attack")
        step = max(1, chunk_bytes // (row_bytes * attack_batch)) * attack_batch
        chunks = range(0, n_adv, step)
        for start in tqdm(chunks, desc=f"{c.adversarial.method} attack", unit="chunk"):
            part = adv_idx[start : start + step]
            sink[part] = attack(source[part], labels[part])
        kind[adv_idx] = c.adversarial.method
    sink.close()
    noisy = labels
    if c.label_noise.rate > 0:
        from coreset.data.label_noise import flip_labels

        noisy = flip_labels(labels, c.label_noise.rate, num_classes, c.label_noise.mode, rng)
    return noisy, kind, noisy != labels
