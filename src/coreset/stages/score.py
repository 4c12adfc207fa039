"""score@<recipe>: one score per training sample (or a greedy order) for one recipe.

Usage: python -m coreset.stages.score <recipe>   (a name under `recipes:` in params.yaml)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coreset import artifacts
from coreset.io import save_npz
from coreset.params import Params
from coreset.scores.inputs import build_context, selection_rng
from coreset.scores.registry import get
from coreset.stages._cli import StageError, recipe_arg, run


def outputs(p: Params, argv: list[str]) -> list[Path]:
    return [artifacts.SCORES / f"{recipe_arg(p, argv, 'score').name}.npz"]


def main(p: Params, argv: list[str]) -> None:
    recipe = recipe_arg(p, argv, "score")
    spec = get(recipe.method)
    ctx = build_context(p, with_model=spec.uses_model(recipe.params))
    try:
        score = spec.fn(ctx, rng=selection_rng(p, recipe.method, 0), balance=recipe.balance,
                        **recipe.params)
    except ValueError as err:
        raise StageError(f"recipes.{recipe.name}: {err}") from None
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (ctx.n,) or np.isnan(score).any():
        raise StageError(f"method {recipe.method!r} returned an invalid score {score.shape}")
    save_npz(artifacts.SCORES / f"{recipe.name}.npz", score=score)
    ranked = np.isfinite(score).sum()
    print(f"score@{recipe.name}: {recipe.method} on {ctx.n} samples ({ranked} ranked)")


if __name__ == "__main__":
    run(main, outputs)
