"""check: the first stage of dvc.yaml. Validates the whole params.yaml (what `coreset check` and
every stage validate) on EVERY `dvc repro` and `dvc exp run` (``always_changed``), so an invalid
file never gives exit 0, even when the bad key feeds no stale stage, and the refusal comes before
DVC removes the outputs of any stage that would rerun.

It then prunes, from the folders that ``evaluate`` depends on (data/selected, metrics/train,
plots/curves/train), the files of recipes and seeds no longer in ``selectors`` / ``seeds``: what
those folders hold is then exactly what a fresh clone's run writes, so going back to an earlier
param set restores ``evaluate`` from the run-cache instead of rerunning it.

Its output data/params.ok has the same bytes on every run (``download`` depends on it, which
orders this stage first and never makes download stale); ``persist`` keeps DVC from deleting it
before the run, so a refusal removes nothing.

Usage: python -m coreset.stages.check
"""

from __future__ import annotations

from pathlib import Path

from coreset import artifacts
from coreset.io import save_text
from coreset.params import Params
from coreset.stages._cli import no_args, run

MARKER = Path("data/params.ok")

outputs = no_args(MARKER)


def stale_files(p: Params) -> list[Path]:
    """Files of the grid's stage outputs in evaluate's folders that no stage of the current
    grid writes (left by a recipe or seed removed from params.yaml). O(files in the folders)."""
    recipes = {f"{r}.npz" for r in p.selectors}
    runs = [f"{r}-{s}" for r in ("full", *p.selectors) for s in p.seeds]
    folders = ((artifacts.SELECTED, recipes, "*.npz"),
               (artifacts.TRAIN_METRICS, {f"{x}.json" for x in runs}, "*.json"),
               (artifacts.CURVES / "train", {f"{x}.csv" for x in runs}, "*.csv"))
    return [f for folder, keep, pattern in folders for f in sorted(folder.glob(pattern))
            if f.name not in keep and f.is_file()]


def main(p: Params, argv: list[str]) -> None:
    stale = stale_files(p)
    for f in stale:
        f.unlink()
    save_text(MARKER, "params.yaml: ok\n")
    print(f"check: params.yaml ok; removed {len(stale)} file(s) of recipes or seeds no longer "
          "in the grid" if stale else "check: params.yaml ok")


if __name__ == "__main__":
    run(main, outputs)
