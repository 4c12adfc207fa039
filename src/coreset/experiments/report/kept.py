"""``coreset kept RECIPE``: what a selector kept, as a picture. One row per class: kept images on
the left, dropped ones on the right, perturbed samples framed in red. Reads the training split
and the selection of the workspace or of any revision (commit, branch, tag, DVC experiment).

    coreset kept moderate                      # -> plots/kept/moderate.png
    coreset kept el2n --rev bally-sots --per-class 8

Cheap: no model, one matplotlib figure (about a second)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coreset.experiments.report import figures
from coreset.experiments.revisions import WORKSPACE, RevisionFiles


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="coreset kept", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="a recipe that the revision ran, e.g. moderate")
    ap.add_argument("--rev", default=WORKSPACE, help="commit, branch, tag or DVC experiment")
    ap.add_argument("--per-class", type=int, default=6, help="images per class and side")
    ap.add_argument("--classes", type=lambda s: [int(x) for x in s.split(",")],
                    help="comma-separated classes (default: all, at most 10)")
    ap.add_argument("--out", type=Path, help="PNG path (default plots/kept/<recipe>.png)")
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root")
    args = ap.parse_args(argv)
    if args.per_class < 1:
        print(f"error: --per-class = {args.per_class} is not allowed: an integer >= 1",
              file=sys.stderr)
        return 2
    if args.rev == WORKSPACE:
        files = RevisionFiles(args.root, WORKSPACE)
    else:
        from coreset.experiments.export import ExportError, code_commit

        try:
            files = RevisionFiles(args.root, code_commit(args.root, args.rev)[0])
        except ExportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    selected = f"data/selected/{args.recipe}.npz"
    if not files.exists(selected):
        print(f"error: {selected} is not in revision {args.rev!r}", file=sys.stderr)
        return 2
    labels = files.array("data/train/labels.npy")
    perturbed = (files.array("data/train/image_kind.npy") != "") | files.array(
        "data/train/label_flipped.npy")
    kept = files.array(selected, "indices")
    classes = args.classes or sorted(np.unique(labels).tolist())[:10]
    out = args.out or Path("plots/kept") / f"{args.recipe}.png"
    figures.kept_grid(files.array("data/train/images.npy"), labels, kept, perturbed, classes,
                      args.per_class, out, title=f"{args.recipe} at {args.rev}: kept "
                      f"{len(kept)} of {len(labels)} (red frame: perturbed sample)")
    print(f"kept: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
