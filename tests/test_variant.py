"""The exact variant of each cell: select writes it (defaults filled in by the code that ran), the
table's manifest CSV carries it per row."""

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from coreset.config import parse
from coreset.experiments import manifest as table_manifest
from coreset.experiments.report.experiments import Experiment
from coreset.experiments.revisions import WORKSPACE
from coreset.io import save_json, save_npz
from coreset.stages import _cli, select
from coreset.training import manifest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def tree_with(recipes: dict, selectors: list[str]) -> dict:
    tree = copy.deepcopy(DEFAULT)
    tree["recipes"] |= recipes
    tree["selectors"] = selectors
    return tree


def test_variant_fills_every_default_and_names_the_window():
    """A recipe that names no parameter still records all of them: which score D2 ranks by and
    how it counts never-learned samples, which end of AUM is kept, CCS's sampler settings."""
    p = parse(tree_with({
        "bare_d2": {"method": "d2", "window": "top", "balance": True, "params": {}},
        "clean": {"method": "aum", "window": "bottom", "balance": False, "params": {}},
        "strata": {"method": "el2n", "window": "strata", "balance": False, "params": {}},
        "old_dyn": {"method": "dyn_unc", "window": "top", "balance": True,
                    "params": {"view": "train"}},
    }, ["random"]))
    d2 = p.recipes["bare_d2"].variant()
    assert d2 == {"method": "d2", "window": "top", "balance": True, "window_params": {},
                  "params": {"score": "forgetting", "neighbors": 5, "gamma": 0.1,
                             "forward_gamma": 1.0, "hard_cut": 0.0, "cut_by": "aum",
                             "cut_scope": "global", "never_learned": "zero", "max_ratio": 1.0}}
    clean = p.recipes["clean"].variant()
    assert (clean["window"], clean["balance"], clean["params"]) == ("bottom", False, {})
    assert p.recipes["strata"].variant()["window_params"] == {"strata": 50, "hard_cut": 0.1}
    assert p.recipes["old_dyn"].variant()["params"] == {"window": 10, "view": "train"}
    assert p.recipes["dyn_unc"].variant()["params"]["view"] == "eval"


def test_select_writes_the_variant_next_to_the_selection(tmp_path, monkeypatch):
    recipe = {"method": "d2", "window": "top", "balance": True, "params": {"neighbors": 3}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree_with({"mine": recipe}, ["mine"])))
    monkeypatch.chdir(tmp_path)
    labels = np.repeat(np.arange(10), 10)
    for folder, name in (("data/train", "labels.npy"), ("data/raw", "train_labels.npy")):
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.save(f"{folder}/{name}", labels)
    save_json("data/raw/meta.json", {"dataset": "digits", "num_classes": 10, "image_size": 8,
                                     "channels": 1, "mean": [0.3], "std": [0.4]})
    save_npz("data/scores/mine.npz", score=np.random.default_rng(0).random(100))
    monkeypatch.setattr(sys, "argv", ["select", "mine"])
    _cli.run(select.main, select.outputs)
    written = json.loads(Path("data/variants/mine.json").read_text())
    assert written["params"]["neighbors"] == 3 and written["params"]["never_learned"] == "zero"
    assert written == parse(yaml.safe_load(Path("params.yaml").read_text())) \
        .recipes["mine"].variant()
    assert len(np.load("data/selected/mine.npz")["indices"]) == 20


def test_the_manifest_csv_carries_each_cells_variant(tmp_path):
    """One row per (recipe, seed); the variant column is the canonical JSON the select stage
    wrote, 'full' for the full-data row and 'unrecorded' where no variant file exists."""
    variant = {"method": "aum", "params": {}, "window": "bottom", "window_params": {},
               "balance": False}
    save_json(tmp_path / "data/variants/aum_clean.json", variant)
    for recipe in ("aum_clean", "old", "full"):
        for seed in (0, 1):
            save_json(tmp_path / f"metrics/manifest/{recipe}-{seed}.json",
                      {"recipe": recipe, "seed": seed, "protocol": {"budget": "epochs"}})
    exp = Experiment(WORKSPACE, "", "", {"seeds": (0, 1)}, ("aum_clean", "old", "full"))
    rows = table_manifest.rows("t", [("ratio=0.2", exp)], tmp_path, tmp_path / "runs")
    frame = pd.read_csv(pd.io.common.StringIO(table_manifest.to_csv(rows)))
    assert frame["recipe"].tolist() == ["aum_clean"] * 2 + ["old"] * 2 + ["full"] * 2
    got = frame["variant"].tolist()
    assert got[:2] == [manifest.canonical(variant).decode()] * 2
    assert json.loads(got[0]) == variant
    assert got[2:] == ["unrecorded"] * 2 + ["full"] * 2
    assert list(frame.columns).index("variant") == list(frame.columns).index("recipe") + 1


@pytest.mark.parametrize("method", ["aum", "d2", "ccs", "dyn_unc", "tdds", "dual", "forgetting"])
def test_every_default_of_the_method_appears_in_its_variant(method):
    from coreset.scores.registry import get

    p = parse(tree_with({"r": {"method": method, "window": "top", "balance": True,
                               "params": {}}}, ["random"]))
    assert p.recipes["r"].variant()["params"] == get(method).defaults


def test_an_export_records_the_variant(tmp_path):
    """selection.json of `coreset export` carries the variant the select stage wrote."""
    from coreset.experiments.export import provenance
    from coreset.experiments.revisions import RevisionFiles

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(DEFAULT))
    (tmp_path / "data/raw").mkdir(parents=True)
    np.save(tmp_path / "data/raw/train_labels.npy", np.arange(10))
    files = RevisionFiles(tmp_path, WORKSPACE)
    assert provenance(files, "d2", WORKSPACE, "", False, 2)["variant"] == "unrecorded"
    variant = parse(DEFAULT).recipes["d2"].variant()
    save_json(tmp_path / "data/variants/d2.json", variant)
    assert provenance(files, "d2", WORKSPACE, "", False, 2)["variant"] == variant
