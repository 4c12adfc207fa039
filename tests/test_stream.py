"""Streamed (memory-mapped, prefetched) images: the same batches as resident ones, and host
memory bounded by the budget, not by the dataset."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from coreset.data.stream import DeviceImages, StreamedImages, as_images
from coreset.models.nets import Classifier
from coreset.params import TrainParams
from coreset.training.device import Normalizer
from coreset.training.loop import fit

TP = TrainParams(model="small_cnn", epochs=2, batch_size=24, lr=0.05, momentum=0.9,
                 weight_decay=5e-4, nesterov=True, schedule="cosine", milestones=(2,), gamma=0.1,
                 step_size=1, augment="none", report="final")
CPU = torch.device("cpu")


def _mapped(tmp_path: Path, n: int = 100, size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    return np.load(tmp_path / "x.npy", mmap_mode="r")


def test_streamed_batches_equal_resident_batches(tmp_path):
    images = _mapped(tmp_path)
    rows = np.array([5, 3, 99, 0, 42, 7, 8, 1, 60, 61, 2])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))
    resident = DeviceImages(torch.from_numpy(np.array(images[rows])))
    streamed = StreamedImages(images, CPU, rows=rows, prefetch=1)
    pairs = list(zip(resident.batches(order, 4), streamed.batches(order, 4), strict=True))
    assert len(pairs) == 3
    for (i1, x1), (i2, x2) in pairs:
        assert torch.equal(i1, i2) and torch.equal(x1, x2)
        assert torch.equal(x2, torch.from_numpy(np.array(images[rows[i2.numpy()]])))


def _tiny_model(channels: int, size: int) -> Classifier:
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    return Classifier(body, 16, 5)


def test_streamed_training_is_bitwise_the_resident_training(tmp_path):
    """Same seed -> same order, same crop/flip draws, same weights and curves, whichever loader."""
    images = _mapped(tmp_path, n=120, size=12)
    labels = torch.from_numpy(np.arange(120) % 5)
    rows = np.arange(0, 120, 2)[::-1].copy()  # a subset, in a non-sorted order
    norm = Normalizer([0.5] * 3, [0.25] * 3, CPU)
    p = TrainParams(**{**TP.__dict__, "augment": "crop_flip"})
    results = []
    for loader in ("device", "stream"):
        source = as_images(images, CPU, loader, host_memory_gb=0.001, rows=rows)
        assert isinstance(source, DeviceImages if loader == "device" else StreamedImages)
        model = _tiny_model(3, 12)
        res = fit(model, source, labels[torch.from_numpy(rows)], p, norm, seed=3,
                  augment="crop_flip", record_dynamics=True)
        results.append((model.state_dict(), res))
    (w1, r1), (w2, r2) = results
    assert all(torch.equal(a, b) for a, b in zip(w1.values(), w2.values(), strict=True))
    assert r1.history == r2.history and np.array_equal(r1.loss, r2.loss)


def test_auto_streams_only_what_exceeds_the_budget(tmp_path):
    images = _mapped(tmp_path)  # 100 * 192 bytes
    assert isinstance(as_images(images, CPU, "auto", host_memory_gb=1.0), DeviceImages)
    assert isinstance(as_images(images, CPU, "auto", host_memory_gb=1e-6), StreamedImages)


_PEAK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    from coreset.params import TrainParams
    from coreset.data.stream import as_images
    from coreset.models.nets import Classifier
    from coreset.training.device import Normalizer
    from coreset.training.loop import fit

    def status(key):  # kB -> bytes; VmHWM is this process's peak RSS (ru_maxrss is inherited)
        line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                    if x.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    path, budget_gb = sys.argv[1], float(sys.argv[2])
    images = np.load(path, mmap_mode="r")
    labels = torch.from_numpy(np.arange(len(images)) % 10)
    torch.manual_seed(0)
    model = Classifier(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()),
                       48, 10)
    p = TrainParams(model="x", epochs=1, batch_size=256, lr=0.01, momentum=0.9,
                    weight_decay=0.0, nesterov=False, schedule="constant", milestones=(),
                    gamma=0.1, step_size=1, augment="crop_flip", report="final")
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    device = torch.device("cpu")
    # warm-up on a few rows: torch's code pages and allocator pools are a fixed cost, not data
    fit(model, as_images(images, device, "stream", budget_gb, rows=np.arange(2048)),
        labels[:2048], p, norm, seed=0, augment="crop_flip")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status("VmRSS")
    source = as_images(images, device, "auto", budget_gb)
    fit(model, source, labels, p, norm, seed=0, augment="crop_flip")
    print(json.dumps({"streamed": type(source).__name__, "growth": status("VmHWM") - before}))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_streamed_training_peak_memory_is_bounded_by_the_budget(tmp_path):
    """A dataset 4x the host budget trains with a peak RSS growth under budget + a fixed 24 MiB
    (batches, augmentation buffers, allocator slack); without dropping the memory map's pages
    the growth would be the whole dataset."""
    mib = 1 << 20
    budget = 24 * mib
    n = 4 * budget // (32 * 32 * 3) + 1
    x = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8,
                                  shape=(n, 32, 32, 3))
    for i in range(0, n, 4096):  # distinct pages: nothing the kernel could share
        x[i : i + 4096] = np.random.default_rng(i).integers(0, 256, x[i : i + 4096].shape)
    x.flush()
    del x
    out = subprocess.run([sys.executable, "-c", _PEAK, str(tmp_path / "big.npy"),
                          str(budget / 2**30)], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["streamed"] == "StreamedImages"
    assert report["growth"] < budget + 24 * mib, report
