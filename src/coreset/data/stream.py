"""Images for training and inference, either resident on the device or streamed from disk.

Every split is one uint8 (N, H, W, C) ``.npy`` file, opened with ``np.load(mmap_mode='r')``
(nothing is read). Two sources give the same batches for the same order:

- :class:`DeviceImages`: the whole (sub)set as one tensor on the device; a batch is one gather.
- :class:`StreamedImages`: a background thread reads each batch's rows from the file, pins them
  (CUDA) and copies them to the device on its own CUDA stream, ``prefetch`` batches ahead, so the
  read and the copy overlap the previous step's compute.

``data.loader: auto`` keeps a set on the device when it fits the device budget (half the free
CUDA memory; on the CPU, ``data.host_memory_gb``), else streams it. Rows are read with
``os.preadv`` into the batch's own buffer, not through the memory map: pages of a file map count
in the process's RSS, and Linux maps whole page-cache folios around each fault (measured: about
256 KiB per random 3 KiB row), so one shuffled batch of a mapped CIFAR-size set grew RSS by
~65 MiB whatever the budget. With pread, the host memory of the streamed path is the batches in
flight (``prefetch + 2`` of them); the file's pages stay in the kernel's page cache, which the
kernel reclaims under pressure and which is not the process's memory.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from coreset.data.names import LOADERS

_CHUNK_ROWS = 4096  # rows per host -> device chunk when a set is uploaded whole


class RowReader:
    """``read(rows)`` -> uint8 array of those rows, in that order. For an ``.npy`` memory map
    (``np.load(mmap_mode='r')``), consecutive rows are coalesced into one ``os.preadv`` each;
    any other array is indexed in memory."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images
        self.row_shape, self.dtype = images.shape[1:], images.dtype
        self.row_bytes = int(np.prod(self.row_shape)) * images.itemsize
        whole_file = (isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap)
                      and images.flags.c_contiguous and hasattr(os, "preadv"))
        self.fd = os.open(images.filename, os.O_RDONLY) if whole_file else None
        self.offset = images.offset if whole_file else 0

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self.fd is None:
            return np.ascontiguousarray(self.images[rows])
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        buf = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            view = memoryview(buf[a:b].reshape(-1).view(np.uint8))
            start = self.offset + int(sorted_rows[a]) * self.row_bytes
            done = 0
            while done < len(view):  # a regular file returns short reads only at its end
                got = os.preadv(self.fd, [view[done:]], start + done)
                if got <= 0:
                    raise OSError(f"{self.images.filename}: short read at row {sorted_rows[a]}")
                done += got
        if np.array_equal(order, np.arange(len(rows))):
            return buf
        out = np.empty_like(buf)
        out[order] = buf
        return out

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class DeviceImages:
    """A uint8 NHWC tensor resident on its device; ``batches`` gathers rows with device indices."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.device = images.device

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, order: torch.Tensor, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices on the device, uint8 images on the device) for consecutive slices of
        ``order``; ``order`` goes to the device once, not once per step."""
        order = order.to(self.device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self.images[idx]


class StreamedImages:
    """Rows ``rows`` of a (memory-mapped) uint8 array, gathered batch by batch in a background
    thread and moved to ``device`` (pinned memory + a side CUDA stream on CUDA)."""

    def __init__(self, images: np.ndarray, device: torch.device,
                 rows: np.ndarray | None = None, prefetch: int = 2) -> None:
        self.reader, self.device, self.prefetch = RowReader(images), torch.device(device), prefetch
        self.n = len(images) if rows is None else len(rows)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def _gather(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.reader.read(idx if self.rows is None else self.rows[idx]))

    def batches(self, order: torch.Tensor, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The same (indices, images) as :meth:`DeviceImages.batches` for the same ``order``."""
        order_dev = order.to(self.device)
        host_order = order.cpu().numpy()
        starts = range(0, len(order), batch_size)
        cuda = self.device.type == "cuda"
        stream = torch.cuda.Stream(self.device) if cuda else None
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work() -> None:
            try:
                for start in starts:
                    if stop.is_set():
                        return
                    x = self._gather(host_order[start : start + batch_size])
                    event = None
                    if cuda:
                        x = x.pin_memory()
                        with torch.cuda.stream(stream):
                            x = x.to(self.device, non_blocking=True)
                            event = torch.cuda.Event()
                            event.record(stream)
                    elif x.device != self.device:
                        x = x.to(self.device)
                    out.put((x, event))
                out.put(None)
            except BaseException as err:  # re-raised in the consuming thread
                out.put(err)

        thread = threading.Thread(target=work, daemon=True, name="stream-prefetch")
        thread.start()
        try:
            for start in starts:
                item = out.get()
                if isinstance(item, BaseException):
                    raise item
                x, event = item
                if event is not None:
                    current = torch.cuda.current_stream(self.device)
                    current.wait_event(event)
                    x.record_stream(current)  # the caching allocator must not reuse it early
                yield order_dev[start : start + batch_size], x
        finally:
            stop.set()
            while thread.is_alive():  # unblock a worker waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    out.get(timeout=0.05)


Images = DeviceImages | StreamedImages


def device_budget(device: torch.device, host_memory_gb: float) -> int:
    """Bytes of images that ``auto`` keeps on ``device``: half the free CUDA memory (the rest is
    for the model, activations and the allocator), or the host budget on the CPU / MPS."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return int(host_memory_gb * 2**30)


def as_images(images: np.ndarray | torch.Tensor, device: torch.device, loader: str = "auto",
              host_memory_gb: float = 4.0, rows: np.ndarray | None = None) -> Images:
    """The images (optionally only ``rows`` of them, never copied whole) as a batch source on
    ``device``: resident when ``loader`` is ``device`` or (``auto``) they fit the device budget,
    else streamed from the (memory-mapped) ``.npy`` file."""
    if loader not in LOADERS:
        raise ValueError(f"data.loader = {loader!r} is not allowed: one of {', '.join(LOADERS)}")
    device = torch.device(device)
    if isinstance(images, torch.Tensor):
        return DeviceImages((images if rows is None else images[torch.as_tensor(rows)])
                            .to(device))
    n = len(images) if rows is None else len(rows)
    nbytes = n * int(np.prod(images.shape[1:])) * images.itemsize
    if loader == "stream" or (loader == "auto" and nbytes > device_budget(device, host_memory_gb)):
        return StreamedImages(images, device, rows)
    return DeviceImages(_upload(images, device, rows))


def _upload(images: np.ndarray, device: torch.device, rows: np.ndarray | None) -> torch.Tensor:
    """Copy (rows of) a possibly memory-mapped array to ``device`` in chunks, so host memory
    holds one chunk at a time besides the result."""
    if device.type == "cpu" and rows is None and not isinstance(images, np.memmap):
        return torch.from_numpy(np.ascontiguousarray(images))  # already in memory: no copy
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    reader = RowReader(images)
    out = torch.empty((len(rows), *images.shape[1:]), dtype=torch.uint8, device=device)
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        out[start : start + len(chunk)] = torch.from_numpy(reader.read(chunk))
    return out
