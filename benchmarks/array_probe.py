"""Run a pipeline stage as ``__main__`` while a thread samples its largest live in-memory array
(benchmarks/scale.py runs every stage through it).

    python benchmarks/array_probe.py OUT.json coreset.stages.pretrain [stage args...]

Every ``INTERVAL`` seconds the thread looks at every numpy array and CPU torch tensor reachable
from a running frame's locals within ``DEPTH`` steps (through dicts, lists, tuples and objects'
attributes) and keeps the largest by the bytes it owns: a
numpy view counts its owning array; memory-mapped arrays (file-backed pages, np.load with
mmap_mode) and arrays borrowing another object's buffer are not counted; a CPU tensor counts its
storage. A sample is a snapshot, so a temporary that lives less than ``INTERVAL`` can be missed:
the figure is the largest array seen live, a lower bound of the largest allocation. Cost: one
walk per sample, not of every object (``gc.get_objects()`` can break another thread: see
``Sampler.sample``).
"""

from __future__ import annotations

import json
import runpy
import sys
import threading
import time

import numpy as np

INTERVAL = 2.0
DEPTH = 4  # frame local -> object -> dict -> container -> array


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


def _children(obj: object) -> list:
    kind = type(obj)
    if kind in (int, float, str, bytes, bool) or issubclass(kind, np.ndarray):
        return []
    try:
        if issubclass(kind, dict):
            return list(obj.values())
        if issubclass(kind, (list, tuple, set)):
            return list(obj)
        attrs = getattr(obj, "__dict__", None)  # an object's attributes (models, sources...)
        return list(attrs.values()) if type(attrs) is dict else []
    except Exception:  # a container changed while read, a proxy that raises: skip it
        return []


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
        """Walk from every running frame's locals into containers and objects' attributes,
        ``DEPTH`` levels deep. Not ``gc.get_objects()``: the list it returns holds a reference
        to every object, including a tuple that another thread is still building, and
        ``tuple(generator)`` then fails with 'bad argument to internal function'."""
        seen: set[int] = set()
        todo = []
        for frame in list(sys._current_frames().values()):
            while frame is not None:
                todo += [(value, 0) for value in list(frame.f_locals.values())]
                frame = frame.f_back
        while todo:
            obj, depth = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            self._consider(obj)
            if depth < DEPTH:
                todo += [(child, depth + 1) for child in _children(obj)]

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
