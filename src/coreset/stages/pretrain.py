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
from coreset.config import Params
from coreset.io import atomic_dir, save_npz
from coreset.stages._cli import no_args, run
from coreset.training.fitting import train_model


def curves(seed: int) -> Path:
    return artifacts.CURVES / f"pretrain/seed{seed}.csv"


def outputs(p: Params, argv: list[str]) -> list[Path]:
    fixed = no_args(artifacts.PRETRAIN, artifacts.DYNAMICS)(p, argv)
    return [*fixed, *(curves(seed) for seed in p.pretrain.seeds)]


def main(p: Params, argv: list[str]) -> None:
    train = artifacts.training_set()
    runs = []
    with atomic_dir(artifacts.PRETRAIN) as folder:
        for seed in p.pretrain.seeds:
            model, name, result = train_model(
                p, p.pretrain, train["images"], train["labels"], seed=seed,
                desc=f"pretrain seed {seed}", curves=curves(seed),
                record_dynamics=True,
            )
            artifacts.save_model(folder / f"seed{seed}.pt", model, name, artifacts.meta())
            runs.append({"correct": result.correct, "loss": result.loss, **result.dynamics})
            print(f"pretrain seed {seed}: test accuracy {result.history[-1]['test_acc']:.4f}")
    save_npz(artifacts.DYNAMICS, **{key: np.stack([r[key] for r in runs]) for key in runs[0]})


if __name__ == "__main__":
    run(main, outputs)
