"""select@<recipe>: score + ratio + window + balance -> kept indices (and weights).

    python -m coreset.stages.select <recipe>
"""

from __future__ import annotations

import numpy as np

from coreset import artifacts
from coreset.config import Params
from coreset.io import load_npz, save_npz
from coreset.score_inputs import build_context, selection_rng
from coreset.scores.registry import get
from coreset.selection import select
from coreset.stages._cli import StageError, run


def main(p: Params, argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in p.recipes:
        raise StageError(f"usage: select <recipe>; recipes: {', '.join(p.recipes)}")
    recipe = p.recipes[argv[0]]
    spec = get(recipe.method)
    score = load_npz(artifacts.SCORES / f"{recipe.name}.npz")["score"]
    labels = np.load(artifacts.TRAIN / "labels.npy")
    try:
        idx = select(score, labels, p.ratio, recipe.window, recipe.balance,
                     selection_rng(p, recipe.method, 1))
    except ValueError as err:
        raise StageError(f"recipes.{recipe.name}: {err}") from None
    # Craig / GradMatch: per-sample weights of the chosen subset; zero-weight samples are dropped
    ctx = build_context(p, with_model=False) if spec.weigher is not None else None
    idx, weights = spec.weigh(ctx, idx, recipe.params)
    save_npz(artifacts.SELECTED / f"{recipe.name}.npz", indices=idx, weights=weights)
    print(f"select@{recipe.name}: kept {len(idx)} of {len(labels)} ({recipe.window}, "
          f"{'balanced' if recipe.balance else 'global'})")


if __name__ == "__main__":
    run(main)
