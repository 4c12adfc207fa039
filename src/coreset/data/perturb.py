"""The `corrupt` stage's scenario, streamed: a perturbed copy of a training split written chunk by
chunk from a memory-mapped source into a destination array (an ``open_memmap`` file), so that the
stage never holds the split in memory.

Corrupted images and adversarial images are disjoint random subsets; label noise is drawn
independently, so a sample can be both mislabeled and corrupted (the paper's mixed scenario).
All randomness comes from one ``numpy`` generator seeded by ``corrupt.seed``, drawn in a fixed
order (subset permutation, corruptions, label noise), plus the attack's own seeded torch generator
for its random starts; the result does not depend on the chunk size.

Memory: rows are read with ``os.preadv`` (:class:`~coreset.data.stream.RowReader`), not through
the source's memory map, and the destination map's pages are dropped from the process (flushed,
then ``MADV_DONTNEED``) every ``chunk_bytes`` written: pages of a file map count in the process's
RSS, and without this the RSS would grow by the split's size twice over. Peak memory is then
O(chunk_bytes) for the images plus O(N) small per-sample arrays (order, labels, the '<U16' kind:
~100 bytes a sample, ~130 MB for ImageNet's 1.28 M), plus the attack model.
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from coreset.config import Corrupt
from coreset.data.sampling import count as budget
from coreset.data.stream import RowReader

CHUNK_BYTES = 64 << 20  # images per copy / attack chunk: 64 MiB worth
_PAGE = mmap.PAGESIZE

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
    """``dst[rows] = values`` into an array; when it is a file memory map (``open_memmap``), the
    written pages are flushed and dropped from the process every ``chunk_bytes`` written (Linux:
    ``MADV_DONTNEED`` on a shared file map keeps the data in the page cache and the file), so
    the map's resident pages stay under ~``chunk_bytes`` plus one page per written run."""

    def __init__(self, images: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.images, self.shape = images, images.shape
        self.row_bytes = int(np.prod(images.shape[1:])) * images.itemsize
        self.chunk_bytes = chunk_bytes
        base = images.base if isinstance(images, np.memmap) else None
        # np.memmap maps from the file offset rounded down to the allocation granularity
        start = images.offset % mmap.ALLOCATIONGRANULARITY if base is not None else 0
        whole = (isinstance(base, mmap.mmap) and images.flags.c_contiguous
                 and len(base) == start + images.nbytes)
        self._map = base if whole and sys.platform == "linux" else None
        self._offset = start
        self._pending, self._lo, self._hi = 0, None, None

    def __setitem__(self, rows: np.ndarray | slice, values: np.ndarray) -> None:
        self.images[rows] = values
        if self._map is None:
            return
        if isinstance(rows, slice):
            first, last = rows.start, rows.stop - 1
        else:
            if not len(rows):
                return
            first, last = int(np.min(rows)), int(np.max(rows))
        lo, hi = self._offset + first * self.row_bytes, self._offset + (last + 1) * self.row_bytes
        self._lo = lo if self._lo is None else min(self._lo, lo)
        self._hi = hi if self._hi is None else max(self._hi, hi)
        self._pending += len(values) * self.row_bytes
        if self._pending >= self.chunk_bytes:
            self.release()

    def release(self) -> None:
        """Flush what was written since the last release and drop its pages from the process."""
        if self._map is None or self._lo is None:
            return
        lo = self._lo // _PAGE * _PAGE
        hi = min(-(-self._hi // _PAGE) * _PAGE, len(self._map))
        self._map.flush(lo, hi - lo)
        self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        self._pending, self._lo, self._hi = 0, None, None


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
    source, sink = Source(src), Sink(dst, chunk_bytes)
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
    sink.release()
    noisy = labels
    if c.label_noise.rate > 0:
        from coreset.data.label_noise import flip_labels

        noisy = flip_labels(labels, c.label_noise.rate, num_classes, c.label_noise.mode, rng)
    return noisy, kind, noisy != labels
