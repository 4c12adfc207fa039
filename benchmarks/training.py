"""Images per second of one training epoch, three loops, one model, one image size:

  ours       training.fit: uint8 images resident on the device (or streamed), batched crop + flip
             on the device, no per-step host sync, bf16 + channels_last on CUDA
  reference  as DeepCore and Moderate-DS train: a torchvision-style dataset with per-sample PIL
             transforms (RandomCrop(pad 4) + RandomHorizontalFlip + ToTensor + Normalize), a
             DataLoader with workers, float32, ``loss.item()`` every step
  limit      the same model and batch size on random tensors already on the device (with our
             CUDA settings), no data pipeline: what the hardware does

``efficiency`` = loop / limit (the limit measured before and after the loops, best kept).
Then the streamed path: peak host memory (VmHWM growth, Linux) of
one epoch over a dataset 4x larger than ``data.host_memory_gb``, measured in a subprocess.

    PYTHONPATH=src python benchmarks/training.py --quick
    PYTHONPATH=src python benchmarks/training.py --models resnet18 resnet50 --size 32 --n 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from coreset.models import create
from coreset.params import TrainParams
from coreset.training.device import Normalizer, pick_device
from coreset.training.loop import fit

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def params(model: str, batch: int, epochs: int = 1) -> TrainParams:
    return TrainParams(model=model, epochs=epochs, batch_size=batch, lr=0.05, momentum=0.9,
                       weight_decay=5e-4, nesterov=True, schedule="cosine", milestones=(),
                       gamma=0.1, step_size=1, augment="crop_flip", report="final")


def data(n: int, size: int, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            rng.integers(0, classes, n).astype(np.int64))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(name: str, x: np.ndarray, y: np.ndarray, batch: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = create(name, 10, 3, x.shape[1]).to(device)
    norm = Normalizer(MEAN, STD, device)
    images, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    fit(model, images[:batch], labels[:batch], params(name, batch), norm, seed=0,
        augment="crop_flip", desc="warm-up")
    _sync(device)
    start = time.perf_counter()
    fit(model, images, labels, params(name, batch), norm, seed=0, augment="crop_flip",
        desc=f"ours {name}")
    _sync(device)
    return len(x) / (time.perf_counter() - start)


class _PILDataset(torch.utils.data.Dataset):
    """CIFAR-style: uint8 HWC arrays, a PIL image per sample, torchvision transforms."""

    def __init__(self, x: np.ndarray, y: np.ndarray, size: int) -> None:
        from torchvision import transforms as T

        self.x, self.y = x, y
        self.transform = T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(),
                                    T.ToTensor(), T.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def reference(name: str, x: np.ndarray, y: np.ndarray, batch: int, device: torch.device,
              workers: int) -> float:
    torch.manual_seed(0)
    model = create(name, 10, 3, x.shape[1]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    loader = torch.utils.data.DataLoader(
        _PILDataset(x, y, x.shape[1]), batch_size=batch, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0)

    def epoch(limit: int | None = None) -> None:
        model.train()
        for step, (xb, yb) in enumerate(loader):
            if limit is not None and step >= limit:
                break
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the references log the running loss every step

    epoch(limit=1)  # warm-up: workers started, kernels chosen
    _sync(device)
    start = time.perf_counter()
    epoch()
    _sync(device)
    return len(x) / (time.perf_counter() - start)


def limit(name: str, n: int, size: int, batch: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = create(name, 10, 3, size).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    xb = torch.randn(batch, 3, size, size, device=device)
    if cuda:
        xb = xb.contiguous(memory_format=torch.channels_last)
    yb = torch.randint(0, 10, (batch,), device=device)
    model.train()

    def steps(count: int) -> None:
        for _ in range(count):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    steps(1)
    _sync(device)
    count = -(-n // batch)
    start = time.perf_counter()
    steps(count)
    _sync(device)
    return count * batch / (time.perf_counter() - start)


_PEAK = """
import json, sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, {bench!r})
from training import params, MEAN, STD
from coreset.data.stream import as_images
from coreset.models import create
from coreset.training.device import Normalizer, pick_device
from coreset.training.loop import fit

def status(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024

path, budget_gb, name, batch, device = sys.argv[1], float(sys.argv[2]), sys.argv[3], \\
    int(sys.argv[4]), pick_device(sys.argv[5])
images = np.load(path, mmap_mode="r")
labels = torch.from_numpy(np.arange(len(images)) % 10).to(device)
if name == "linear":  # the data path alone: a model that costs nothing
    from coreset.models.nets import Classifier
    model = Classifier(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()),
                       48, 10).to(device)
else:
    model = create(name, 10, 3, images.shape[1]).to(device)
norm = Normalizer(MEAN, STD, device)
fit(model, as_images(images, device, "stream", budget_gb, rows=np.arange(batch)),
    labels[:batch], params(name, batch), norm, seed=0, augment="crop_flip", desc="warm-up")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
before = status("VmRSS")
source = as_images(images, device, "auto", budget_gb)
t = __import__("time").perf_counter()
fit(model, source, labels, params(name, batch), norm, seed=0, augment="crop_flip", desc="stream")
seconds = __import__("time").perf_counter() - t
print(json.dumps({{"loader": type(source).__name__, "growth": status("VmHWM") - before,
                  "rss": status("VmHWM"), "images_per_s": len(images) / seconds}}))
"""


def streamed_peak(name: str, size: int, batch: int, budget_mb: int, device: str) -> dict:
    """One epoch streamed from a file 4x the budget; peak RSS growth over the warm RSS."""
    n = 4 * budget_mb * 2**20 // (size * size * 3) + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        for i in range(0, n, 4096):
            x[i : i + 4096] = np.random.default_rng(i).integers(0, 256, x[i : i + 4096].shape)
        x.flush()
        del x
        script = _PEAK.format(bench=str(Path(__file__).parent))
        out = subprocess.run([sys.executable, "-c", script, str(path), str(budget_mb / 1024),
                              name, str(batch), device], capture_output=True, text=True,
                             check=True)
    report = json.loads(out.stdout.splitlines()[-1])
    return {"n": n, "dataset_mb": n * size * size * 3 / 2**20, **report}


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"])
    a.add_argument("--size", type=int, default=32)
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--n", type=int, default=10000, help="images per measured epoch")
    a.add_argument("--workers", type=int, default=2, help="DataLoader workers (reference loop)")
    a.add_argument("--device", default="auto")
    a.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    a.add_argument("--budget-mb", type=int, default=64, help="host budget of the streamed run")
    a.add_argument("--stream-model", default="linear",
                   help="model of the streamed run (linear: a pooled linear layer, data path only)")
    a.add_argument("--quick", action="store_true", help="small epochs: under 2 min on a CPU")
    args = a.parse_args(argv)
    device = pick_device(args.device, args.threads)
    heavy = {"resnet18", "resnet50", "vgg16"}
    rows = []
    for name in args.models:
        n, batch = args.n, args.batch
        if args.quick:  # a CPU does ~70 img/s of small_cnn and ~5 of resnet18 at 32 px
            n, batch = (64, 32) if name in heavy and device.type == "cpu" else (512, batch)
        x, y = data(n, args.size)
        # the limit before and after the loops, best kept: a shared machine's load drifts
        lim = limit(name, n, args.size, batch, device)
        ours_ips = ours(name, x, y, batch, device)
        ref = reference(name, x, y, batch, device, args.workers)
        lim = max(lim, limit(name, n, args.size, batch, device))
        rows.append((name, n, batch, ours_ips, ref, lim))
    print(f"\ndevice {device} ({torch.get_num_threads()} threads), {args.size} px, crop+flip, "
          f"{args.workers} DataLoader workers, torch {torch.__version__}\n")
    print("| model | images | batch | ours img/s | reference img/s | limit img/s "
          "| ours efficiency | reference efficiency | ours / reference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, batch, o, r, lim in rows:
        print(f"| {name} | {n} | {batch} | {o:.1f} | {r:.1f} | {lim:.1f} | {o / lim:.2f} "
              f"| {r / lim:.2f} | {o / r:.1f}x |", flush=True)
    if Path("/proc/self/clear_refs").exists():
        budget = 16 if args.quick else args.budget_mb
        s = streamed_peak(args.stream_model, args.size, args.batch, budget, str(device))
        print(f"\nstreamed ({s['loader']}, {args.stream_model}, batch {args.batch}): "
              f"{s['dataset_mb']:.0f} MiB dataset, budget "
              f"{budget} MiB, peak RSS growth over the warm process {s['growth'] / 2**20:.1f} "
              f"MiB (peak RSS {s['rss'] / 2**20:.0f} MiB), {s['images_per_s']:.0f} img/s")


if __name__ == "__main__":
    main()
