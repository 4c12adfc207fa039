"""What recording ``eval_prob`` (Dyn-Unc's eval-mode, un-augmented view: one inference pass over
the training set after each epoch, ``training.loop.assigned_prob``) adds to pretraining.

Times the pretraining of ``params.yaml`` (its model, epochs, batch size, lr schedule; digits
unless ``--n`` asks for random colour images) with ``record_dynamics=True`` twice: as the loop
runs it, and with ``assigned_prob`` replaced by a no-op. Runs alternate, the best of ``--repeats``
is kept for each; the test-set pass of every epoch is in both.

    PYTHONPATH=src python benchmarks/eval_prob_cost.py
    PYTHONPATH=src python benchmarks/eval_prob_cost.py --model resnet18 --n 20000 --size 32
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from coreset.config import load
from coreset.data import datasets
from coreset.models import create, resolve
from coreset.training import loop
from coreset.training.device import Normalizer, pick_device


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if args.n == 0:
        s = datasets.load("digits", "unused")
        return s.train_images, s.train_labels, s.test_images, s.test_labels
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.n + args.n // 5, args.size, args.size, 3), dtype=np.uint8)
    y = rng.integers(0, 10, len(x)).astype(np.int64)
    return x[: args.n], y[: args.n], x[args.n :], y[args.n :]


def _run(args, tp, device, arrays, record_eval: bool) -> float:
    x, y, tx, ty = (torch.from_numpy(a).to(device) for a in arrays)
    channels, size = x.shape[3], x.shape[1]
    name = resolve(tp.model, channels, size)
    torch.manual_seed(0)
    model = create(name, 10, channels, size).to(device)
    norm = Normalizer([0.5] * channels, [0.25] * channels, device)
    saved = loop.assigned_prob
    if not record_eval:
        loop.assigned_prob = lambda m, images, labels, *a, **k: np.zeros(len(labels), np.float32)
    try:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loop.fit(model, x, y, tp, norm, seed=0, test=(tx, ty), record_dynamics=True,
                 desc="pretrain")
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    finally:
        loop.assigned_prob = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="override pretrain.model")
    ap.add_argument("--epochs", type=int, default=0, help="override pretrain.epochs")
    ap.add_argument("--n", type=int, default=0, help="random colour images instead of digits")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    p = load("params.yaml")
    tp = p.pretrain
    if args.model:
        tp = replace(tp, model=args.model)
    if args.epochs:
        tp = replace(tp, epochs=args.epochs)
    device = pick_device(p.device, p.cpu_threads)
    arrays = _data(args)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.repeats):
        for record_eval in (False, True):
            best[record_eval] = min(best[record_eval], _run(args, tp, device, arrays, record_eval))
    extra = best[True] - best[False]
    print(f"device {device}, model {resolve(tp.model, arrays[0].shape[3], arrays[0].shape[1])}, "
          f"N {len(arrays[0])}, {tp.epochs} epochs, best of {args.repeats}")
    print(f"pretrain without eval_prob {best[False]:.2f} s, with {best[True]:.2f} s: "
          f"+{extra:.2f} s (+{100 * extra / best[False]:.1f} %)")


if __name__ == "__main__":
    main()
