"""Run a pipeline stage as ``__main__`` while a thread samples its largest live in-memory array
(benchmarks/scale.py runs every stage through it).

    python benchmarks/array_probe.py OUT.json coreset.stages.pretrain [stage args...]

Every ``INTERVAL`` seconds the thread looks at every numpy array and CPU torch tensor reachable
from a live object or a running frame's locals and keeps the largest by the bytes it owns: a
numpy view counts its owning array; memory-mapped arrays (file-backed pages, np.load with
mmap_mode) and arrays borrowing another object's buffer are not counted; a CPU tensor counts its
storage. A sample is a snapshot, so a temporary that lives less than ``INTERVAL`` can be missed:
the figure is the largest array seen live, a lower bound of the largest allocation. Cost: one
``gc.get_objects()`` walk per sample (~0.1 s with torch imported).
"""

from __future__ import annotations

import gc
import json
import runpy
import sys
import threading
import time

import numpy as np

INTERVAL = 2.0


def _measure(obj: object) -> tuple[int, str] | None:
    kind = type(obj)  # type(), not isinstance(): a proxy's __class__ may warn or raise
    if issubclass(kind, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if isinstance(root, np.memmap) or root.base is not None:
            return None  # file-backed, or a view of a buffer it does not own (a tensor's)
        return root.nbytes, f"numpy {root.dtype} {root.shape}"
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(kind, torch.Tensor) and obj.device.type == "cpu":
        try:
            nbytes = obj.untyped_storage().nbytes()
        except RuntimeError:  # a tensor without storage (meta, sparse)
            return None
        return nbytes, f"torch {str(obj.dtype).removeprefix('torch.')} {tuple(obj.shape)}"
    return None


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.best: tuple[int, str] = (0, "")
        self.stop = threading.Event()

    def _consider(self, obj: object) -> None:
        try:
            found = _measure(obj)
        except Exception:  # a proxy whose __class__ raises: not an array
            return
        if found is not None and found[0] > self.best[0]:
            self.best = found

    def sample(self) -> None:
        for frame in list(sys._current_frames().values()):
            while frame is not None:
                for value in list(frame.f_locals.values()):
                    self._consider(value)
                    self._inside(value)  # a dict of arrays only is not gc-tracked
                frame = frame.f_back
        for obj in gc.get_objects():
            self._consider(obj)  # tensors are gc-tracked, numpy arrays are not: look inside
            self._inside(obj)

    def _inside(self, obj: object) -> None:
        if issubclass(type(obj), dict):
            for value in list(obj.values()):
                self._consider(value)
        elif issubclass(type(obj), (list, tuple)):
            for value in list(obj):
                self._consider(value)

    def run(self) -> None:
        start = time.monotonic()
        # often at first (a short stage's arrays live a second), then every INTERVAL seconds
        while not self.stop.wait(min(INTERVAL, 0.25 + (time.monotonic() - start) / 20)):
            try:
                self.sample()
            except Exception:  # a container changed while read: next sample
                continue


def main() -> None:
    out, module, *args = sys.argv[1:]
    sampler = Sampler()
    sampler.start()
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sampler.stop.set()
        sampler.join()  # a sample running into interpreter shutdown aborts torch's threads
        nbytes, what = sampler.best
        with open(out, "w") as f:
            json.dump({"largest_array_bytes": nbytes, "largest_array": what}, f)


if __name__ == "__main__":
    main()
