"""train@<recipe>-<seed>: a fresh model trained on the selected subset, tested on the clean test
split. ``full`` as the recipe trains on the whole training split (the reference row).

Usage: python -m coreset.stages.train <recipe|full> <seed>   (reads train.* in params.yaml)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from coreset import artifacts
from coreset.io import load_npz, save_json
from coreset.params import Params
from coreset.stages._cli import StageError, run
from coreset.training import manifest
from coreset.training.fitting import train_model


def parse_args(p: Params, argv: list[str]) -> tuple[str, int]:
    if len(argv) != 2 or (argv[0] not in p.recipes and argv[0] != "full") \
            or not argv[1].isdigit():
        raise StageError(f"usage: python -m coreset.stages.train <recipe|full> <seed>; "
                         f"recipes: {', '.join(p.recipes)}")
    return argv[0], int(argv[1])


def outputs(p: Params, argv: list[str]) -> list[Path]:
    name, seed = parse_args(p, argv)
    return [artifacts.TRAIN_METRICS / f"{name}-{seed}.json",
            artifacts.CURVES / f"train/{name}-{seed}.csv",
            manifest.MANIFEST / f"{name}-{seed}.json"]


def main(p: Params, argv: list[str]) -> None:
    name, seed = parse_args(p, argv)
    train = artifacts.training_set()
    if name == "full":
        idx = np.arange(len(train["labels"]))
        weights = None
    else:
        sel = load_npz(artifacts.SELECTED / f"{name}.npz")
        idx, weights = sel["indices"], sel["weights"]
        weights = None if np.all(weights == 1) else weights
    start = time.perf_counter()
    model, _, result = train_model(
        p, p.train, train["images"], train["labels"], seed=seed, indices=idx,
        desc=f"train {name} seed {seed}", curves=artifacts.CURVES / f"train/{name}-{seed}.csv",
        weights=weights,
    )
    wall_s = time.perf_counter() - start
    best = int(np.argmax([h["test_acc"] for h in result.history]))
    save_json(artifacts.TRAIN_METRICS / f"{name}-{seed}.json", {
        "selector": name, "seed": seed, "n_train": len(idx),
        "accuracy": result.accuracy(p.train.report), "report": p.train.report,
        "final_acc": result.history[-1]["test_acc"],
        "best_acc": result.history[best]["test_acc"], "best_epoch": best + 1,
        "epochs_run": len(result.history), "protocol": p.train.protocol(),
    })
    device = next(model.parameters()).device
    # deterministic (a DVC output) + the run record (wall time, device name; not hashed)
    manifest.write(name, seed, manifest.row(
        p, name, seed, idx, weights, result.steps, result.samples_seen, len(result.history),
        device), device, wall_s)
    print(f"train@{name}-{seed}: {p.train.report} test accuracy "
          f"{result.accuracy(p.train.report):.4f} on {len(idx)} samples")


if __name__ == "__main__":
    run(main, outputs)
