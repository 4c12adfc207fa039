"""benchmarks/synthetic.py: the same bytes whatever the number of processes, every class in both
splits with n // C or one more images, and a layout the dataset loaders read."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from coreset.data import datasets

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks/synthetic.py"
SPEC = importlib.util.spec_from_file_location("synthetic", SCRIPT)
synthetic = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(synthetic)


def test_npy_layout_is_identical_with_one_or_two_processes_and_loads(tmp_path):
    n = synthetic.BLOCK * 2 + 100  # three blocks
    for workers in (1, 2):
        subprocess.run([sys.executable, str(SCRIPT), "cifar10", str(tmp_path / str(workers)),
                        "--n-train", str(n), "--n-test", "70", "--classes", "7", "--size", "8",
                        "--seed", "3", "--workers", str(workers)], check=True)
    for name in datasets.NPY_FILES:
        one, two = (np.load(tmp_path / w / f"{name}.npy") for w in ("1", "2"))
        assert one.tobytes() == two.tobytes(), name
    split = datasets.load("npy", tmp_path / "1")
    assert split.train_images.shape == (n, 8, 8, 3)
    counts = np.bincount(split.train_labels, minlength=7)
    assert counts.min() == n // 7 and counts.max() == n // 7 + 1
    assert np.bincount(split.test_labels).min() == 70 // 7
    assert split.train_images[:4096].std() > 0 and split.train_images[-100:].std() > 0


def test_the_image_tree_has_one_wnid_folder_per_class_and_decodes(tmp_path):
    synthetic.generate("imagenet", tmp_path, n_train=30, n_test=10, classes=5, size=8, seed=0,
                       workers=1)
    split = datasets.load("imagefolder", tmp_path, image_size=8)
    assert split.classes == synthetic.wnids(5) == sorted(split.classes)
    assert split.classes[0] == "n01440764"
    assert np.bincount(split.train_labels).tolist() == [6] * 5
    assert split.test_images.shape == (10, 8, 8, 3)


def test_classes_differ_more_than_images_of_one_class():
    """The learnable structure: images sit closer to their own class template than to others'."""
    x, y = synthetic.block(0, "train", 0, 400, 10, 16)
    t = synthetic.templates(10, 16, 0).reshape(10, -1)
    d = ((x.reshape(len(x), 1, -1).astype(np.float32) - t[None]) ** 2).sum(-1)
    assert (d.argmin(1) == y).mean() > 0.9
