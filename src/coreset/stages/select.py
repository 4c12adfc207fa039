"""select@<recipe>: score + ratio + window + balance -> kept indices (and weights), and the
recipe's exact variant (data/variants/<recipe>.json: every parameter with defaults filled in).

Usage: python -m coreset.stages.select <recipe>   (a name under `recipes:` in params.yaml)

The ratio is checked against the observed (possibly noisy) class counts it is applied to.
"""

from __future__ import annotations

from pathlib import Path

from coreset import artifacts
from coreset.config import check_ratio
from coreset.io import load_npy, load_npz, save_json, save_npz
from coreset.params import Params
from coreset.scores.inputs import build_context, selection_rng
from coreset.scores.registry import get
from coreset.scores.samplers import mean_probability
from coreset.scores.selection import select
from coreset.stages._cli import StageError, recipe_arg, run


def outputs(p: Params, argv: list[str]) -> list[Path]:
    name = recipe_arg(p, argv, "select").name
    return [artifacts.SELECTED / f"{name}.npz", artifacts.VARIANTS / f"{name}.json"]


def main(p: Params, argv: list[str]) -> None:
    recipe = recipe_arg(p, argv, "select")
    spec = get(recipe.method)
    score = load_npz(artifacts.SCORES / f"{recipe.name}.npz")["score"]
    labels_file = artifacts.TRAIN / "labels.npy"
    labels = load_npy(labels_file)
    check_ratio(p.ratio, artifacts.class_counts(labels_file, artifacts.meta().num_classes),
                str(labels_file))
    try:
        idx = select(score, labels, p.ratio, recipe.window, recipe.balance,
                     selection_rng(p, recipe.method, 1), recipe.window_params,
                     _difficulty(recipe.window, recipe.window_params))
    except ValueError as err:
        raise StageError(f"recipes.{recipe.name}: {err}") from None
    # Craig / GradMatch: per-sample weights of the chosen subset; zero-weight samples are dropped
    ctx = build_context(p, with_model=False) if spec.weigher is not None else None
    idx, weights = spec.weigh(ctx, idx, recipe.params)
    save_npz(artifacts.SELECTED / f"{recipe.name}.npz", indices=idx, weights=weights)
    # which variant made this selection, as the code that ran fills the defaults (a later
    # default cannot relabel an old cell): the table's manifest reads it per cell
    save_json(artifacts.VARIANTS / f"{recipe.name}.json", recipe.variant())
    print(f"select@{recipe.name}: kept {len(idx)} of {len(labels)} ({recipe.window}, "
          f"{'balanced' if recipe.balance else 'global'})")


def _difficulty(window: str, params: dict):
    """DUAL's mean assigned-label probability for the window ``beta``; None for the others."""
    if window != "beta":
        return None
    return mean_probability(load_npz(artifacts.DYNAMICS)["prob"], params["trajectory"])


if __name__ == "__main__":
    run(main, outputs)
