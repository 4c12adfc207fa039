"""download: materialise the dataset (train + clean test) as uint8 arrays in data/raw/; image
trees are decoded by one process per CPU straight into the output files."""

from __future__ import annotations

from coreset import artifacts
from coreset.config import Params
from coreset.data import datasets
from coreset.data.image_trees import default_workers
from coreset.stages._cli import run


def main(p: Params, argv: list[str]) -> None:
    split = datasets.materialise(p.dataset, p.root, artifacts.RAW, test_fraction=p.test_fraction,
                                 split_seed=p.split_seed, image_size=p.image_size,
                                 workers=default_workers())
    print(f"{p.dataset}: {len(split.train_labels)} train, {len(split.test_labels)} test images "
          f"of shape {split.train_images.shape[1:]}, {len(split.classes)} classes")


if __name__ == "__main__":
    run(main)
