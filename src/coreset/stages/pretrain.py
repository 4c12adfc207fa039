"""pretrain: train the feature extractor(s) on the full (perturbed) training split, one per
pretrain seed, recording per-epoch per-sample correctness and loss (training dynamics)."""

from __future__ import annotations

import numpy as np

from coreset import artifacts
from coreset.config import Params
from coreset.fitting import train_model
from coreset.io import atomic_dir, save_npz
from coreset.stages._cli import run


def main(p: Params, argv: list[str]) -> None:
    train = artifacts.training_set()
    correct, losses = [], []
    with atomic_dir(artifacts.PRETRAIN) as folder:
        for seed in p.pretrain_seeds:
            model, name, result = train_model(
                p, p.pretrain, train["images"], train["labels"], seed=seed,
                desc=f"pretrain seed {seed}", curves=artifacts.CURVES / f"pretrain/seed{seed}.csv",
                record_dynamics=True,
            )
            artifacts.save_model(folder / f"seed{seed}.pt", model, name, artifacts.meta())
            correct.append(result.correct)
            losses.append(result.loss)
            print(f"pretrain seed {seed}: test accuracy {result.history[-1]['test_acc']:.4f}")
    save_npz(artifacts.DYNAMICS, correct=np.stack(correct), loss=np.stack(losses))


if __name__ == "__main__":
    run(main)
