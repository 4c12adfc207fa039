"""pretrain: train the feature extractor(s) on the full (perturbed) training split, one per
pretrain seed, recording per-epoch per-sample training dynamics: correctness, loss, and the
margin, assigned-label probability and probability margin (training.dynamics.record) that AUM, CCS,
Dyn-Unc and TDDS read, TDDS's change over all classes, and the eval-mode un-augmented
assigned-label probability after each epoch (eval_prob, Dyn-Unc's reference view: one inference
pass over the training set per epoch); each (S, E, N) in data/dynamics.npz.

Usage: python -m coreset.stages.pretrain   (reads pretrain.* in params.yaml)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coreset import artifacts
from coreset.config import dynamics_bytes
from coreset.io import atomic_dir, save_npz
from coreset.params import Params
from coreset.stages._cli import no_args, run
from coreset.training.fitting import train_model


def curves(seed: int) -> Path:
    return artifacts.CURVES / f"pretrain/seed{seed}.csv"


def outputs(p: Params, argv: list[str]) -> list[Path]:
    fixed = no_args(artifacts.PRETRAIN, artifacts.DYNAMICS)(p, argv)
    return [*fixed, *(curves(seed) for seed in p.pretrain.seeds)]


def main(p: Params, argv: list[str]) -> None:
    """Memory: the images (resident within what ``data.host_memory_gb`` leaves after the
    dynamics, else streamed) + config.dynamics_bytes: N x C x 4 bytes of previous-epoch logits +
    (S + 1) x E x N x 25 bytes of per-epoch arrays (the S seeds' arrays of data/dynamics.npz,
    filled seed by seed, and the run being trained); config.check_sizes refuses params whose
    dynamics exceed ``data.host_memory_gb`` before anything runs."""
    train = artifacts.training_set()
    n, seeds = len(train["labels"]), p.pretrain.seeds
    reserve = dynamics_bytes(n, artifacts.meta().num_classes, p.pretrain.epochs, len(seeds))
    out: dict[str, np.ndarray] = {}
    with atomic_dir(artifacts.PRETRAIN) as folder:
        for i, seed in enumerate(seeds):
            model, name, result = train_model(
                p, p.pretrain, train["images"], train["labels"], seed=seed,
                desc=f"pretrain seed {seed}", curves=curves(seed),
                record_dynamics=True, reserve_bytes=reserve,
            )
            artifacts.save_model(folder / f"seed{seed}.pt", model, name, artifacts.meta())
            run = {"correct": result.correct, "loss": result.loss, **result.dynamics}
            for key, arr in run.items():  # (S, E, N) filled in place: np.stack would copy all
                out.setdefault(key, np.empty((len(seeds), *arr.shape), arr.dtype))[i] = arr
            print(f"pretrain seed {seed}: test accuracy {result.history[-1]['test_acc']:.4f}")
            del result, run
    save_npz(artifacts.DYNAMICS, **out)

if __name__ == "__main__":
    run(main, outputs)
