"""download: materialise the dataset (train + clean test) as uint8 arrays in data/raw/; image
trees are decoded by one process per CPU straight into the output files.

Usage: python -m coreset.stages.download   (reads data.* in params.yaml)

A folder that torchvision cannot read (missing, empty, no class folders, a broken image) is named
in one line; the ratio is checked against the fresh split's class counts before anything is
written.
"""

from __future__ import annotations

import numpy as np

from coreset import artifacts
from coreset.config import check_ratio
from coreset.data import datasets
from coreset.data.image_trees import default_workers
from coreset.params import Params
from coreset.stages._cli import StageError, no_args, run

outputs = no_args(artifacts.RAW)


def main(p: Params, argv: list[str]) -> None:
    d = p.data

    def check(split: datasets.Split) -> None:
        counts = np.bincount(split.train_labels, minlength=len(split.classes))
        check_ratio(p.ratio, counts, f"the {d.dataset} training split")

    try:
        split = datasets.materialise(d.dataset, d.root, artifacts.RAW,
                                     test_fraction=d.test_fraction, split_seed=d.split_seed,
                                     image_size=d.image_size, workers=default_workers(),
                                     check=check)
    except datasets.DatasetUnavailable as err:
        raise StageError(str(err)) from None
    except OSError as err:  # torchvision/PIL on a missing or empty folder, or a broken image
        raise StageError(f"params.yaml: data.root = {d.root!r} is not allowed: it must hold the "
                         f"{d.dataset} files ({err})") from None
    print(f"{d.dataset}: {len(split.train_labels)} train, {len(split.test_labels)} test images "
          f"of shape {split.train_images.shape[1:]}, {len(split.classes)} classes")


if __name__ == "__main__":
    run(main, outputs)
