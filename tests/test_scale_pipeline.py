"""The whole pipeline on a 20,000-image ImageNet-shaped tree (1,000 classes, 8 px JPEGs written
by benchmarks/synthetic.py, one pretraining epoch), each stage its own process as dvc.yaml runs
it (benchmarks/scale.py): the peak RSS that corrupt, pretrain and embed report through
$CORESET_STAGE_LOG stays within data.host_memory_gb + config.HOST_OVERHEAD_GIB.

The budget is tight on purpose (host_memory_gb 0.1: pretrain's 20,000 x 1,000 logits buffer is
76 MiB of it): a stage that held a second N x C array in float64 (the old whole-array
end_epoch: ~640 MiB of temporaries) or the split several times over would exceed it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coreset.config import HOST_OVERHEAD_GIB

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
HOST_GB = 0.1
BUDGETED = ("corrupt", "pretrain", "embed")


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("scale")
    tree = tmp / "tree"
    subprocess.run([sys.executable, str(REPO / "benchmarks/synthetic.py"), "imagenet", str(tree),
                    "--n-train", "20000", "--n-test", "2000", "--size", "8"], check=True)
    out = tmp / "rows.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks/scale.py"), "--dataset", "imagefolder",
                    "--root", str(tree), "--image-size", "8", "--host-memory-gb", str(HOST_GB),
                    "--work", str(tmp / "work"), "--json", str(out),
                    "--set", "selectors=[random, el2n]", "--set", "train.budget=steps",
                    "--set", "train.steps=10"], check=True, capture_output=True, text=True)
    return {"rows": json.loads(out.read_text())["rows"], "work": tmp / "work"}


def test_every_stage_ran_on_the_imagenet_shaped_tree(scale_run):
    ran = [" ".join([r["stage"], *r["argv"]]) for r in scale_run["rows"]]
    assert ran == ["check", "download", "corrupt", "pretrain", "embed", "score random",
                   "score el2n", "select random", "select el2n", "train random 0", "train el2n 0",
                   "train full 0", "evaluate"]
    meta = json.loads((scale_run["work"] / "data/raw/meta.json").read_text())
    assert (meta["n_train"], meta["n_test"], meta["num_classes"]) == (20000, 2000, 1000)
    assert meta["classes"][0] == "n01440764"


def test_the_classes_are_learnable(scale_run):
    """One epoch on 20 images per class beats chance (0.1 %) by far: the templates are signal."""
    curve = (scale_run["work"] / "plots/curves/pretrain/seed0.csv").read_text().splitlines()
    header, last = curve[0].split(","), curve[-1].split(",")
    assert float(last[header.index("test_acc")]) > 0.005


@pytest.mark.parametrize("stage", BUDGETED)
def test_peak_rss_within_host_memory_plus_the_fixed_overhead(scale_run, stage):
    (row,) = [r for r in scale_run["rows"] if r["stage"] == stage]
    budget_mib = (HOST_GB + HOST_OVERHEAD_GIB) * 1024
    assert row["peak_rss_mib"] <= budget_mib, row
    assert row["tree_rss_mib"] <= budget_mib, row  # its process tree, sampled
