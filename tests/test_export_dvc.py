"""On a tiny DVC run: the offline plots page, `coreset export` of the workspace and of a commit,
the README's Subset snippet training on the export, `coreset kept`, and the export going back in
through the `external` selector."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import tiny_repo
from tiny_repo import sh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_built) -> Path:
    """The tiny baseline with a second training seed (so that the summary has a std), committed
    with its dvc.lock."""
    repo = tiny_repo.copy_built(tiny_built[0], tmp_path_factory.mktemp("repo") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seeds"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(repo, "dvc", "repro")
    assert "Running stage 'train@moderate-1'" in out and "Running stage 'pretrain'" not in out
    tiny_repo.git(repo, "add", "-A")
    tiny_repo.git(repo, "commit", "-qm", "tiny")
    return repo


def coreset(repo: Path, *args: str) -> str:
    return sh(repo, sys.executable, "-m", "coreset", *args)


def test_compact_metrics_and_an_offline_plots_page_naming_every_selector(repo):
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert set(summary) == {"ratio", "perturbed", "accuracy", "std"}
    assert set(summary["accuracy"]) == set(summary["std"]) == {"full", "random", "moderate"}
    runs = np.genfromtxt(repo / "plots/runs.csv", delimiter=",", names=True, dtype=None,
                         encoding="utf-8")
    moderate = runs["accuracy"][runs["selector"] == "moderate"]
    assert summary["accuracy"]["moderate"] == pytest.approx(moderate.mean(), abs=1e-6)
    assert summary["std"]["moderate"] == pytest.approx(moderate.std(ddof=1), abs=1e-6)
    sh(repo, "dvc", "plots", "show", "-o", "dvc_plots")
    sh(repo, sys.executable, "-m", "coreset.experiments.report.offline", "check",
       "dvc_plots/index.html")
    page = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in page and "selector_errorbars" not in page
    assert '"extent": "stdev"' in page  # the error bars of the accuracy plot


def test_export_of_workspace_and_commit_and_the_readme_snippet_trains(repo):
    coreset(repo, "export", "moderate")
    coreset(repo, "export", "moderate", "--rev", "HEAD", "--out", "exports/head")
    ws, head = repo / "exports/workspace/moderate", repo / "exports/head"
    selected = np.load(repo / "data/selected/moderate.npz")
    for folder in (ws, head):
        kept = np.load(folder / "kept_indices.npy")
        np.testing.assert_array_equal(kept, np.sort(selected["indices"]))
        assert kept.dtype == np.int64 and len(kept) == round(0.2 * 1437)
        assert np.loadtxt(folder / "kept.csv", delimiter=",", skiprows=1)[:, 0].tolist() == \
            kept.tolist()
    meta = json.loads((head / "selection.json").read_text())
    commit = sh(repo, "git", "rev-parse", "HEAD").strip()
    labels = (repo / "data/raw/train_labels.npy").read_bytes()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert meta["what"] == "kept" and meta["n_train"] == 1437 and meta["kept"] == len(kept)
    assert meta["code"] == {"rev": "HEAD", "commit": commit, "uncommitted_changes": False}
    assert meta["dataset"]["train_labels_sha256"] == hashlib.sha256(labels).hexdigest()
    assert meta["dataset"]["dvc_md5"]["data/raw"] == lock["stages"]["download"]["outs"][0]["md5"]
    assert meta["params"]["selectors"] == ["random", "moderate"]
    assert "TRAINING split" in meta["indices_refer_to"]
    for folder in (ws, head):  # the release checks out against its scores and the dvc.lock
        verified = coreset(repo, "verify", str(folder), "--root", str(repo))
        assert "OK (7 checksums" in verified and f"{len(kept)} kept re-derived" in verified
    assert meta["dvc_md5"]["scores"] == hashlib.md5(
        (repo / "data/scores/moderate.npz").read_bytes()).hexdigest()
    out = sh(repo, sys.executable, "docs/examples/train_on_export.py", str(ws))
    accuracy = float(out.strip().rsplit(" ", 1)[-1])
    assert accuracy > 0.5, out  # 10 classes: chance is 0.1


def test_kept_figure_and_the_export_going_back_in_through_external(repo):
    coreset(repo, "kept", "moderate", "--per-class", "3")
    assert (repo / "plots/kept/moderate.png").stat().st_size > 1000
    coreset(repo, "export", "moderate", "--out", "scores/moderate")
    file = repo / "scores/moderate/kept.csv"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["recipes"]["mine"] = {"method": "external", "window": "top", "balance": False,
                                 "params": {"path": "scores/moderate/kept.csv", "kind": "indices",
                                            "sha256": hashlib.sha256(file.read_bytes())
                                            .hexdigest()}}
    params["selectors"] = ["random", "moderate", "mine"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "dvc", "repro", "select@mine")
    mine = np.load(repo / "data/selected/mine.npz")["indices"]
    np.testing.assert_array_equal(np.sort(mine), np.sort(
        np.load(repo / "data/selected/moderate.npz")["indices"]))
    # the declared hash pins the file: DVC keeps the results of the declared content (the stage
    # is unchanged for DVC), running the stage on a changed file stops with the hash to declare,
    # and declaring it makes the stage (and everything after it) stale
    lines = file.read_text().splitlines()
    file.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    assert "score@mine" not in sh(repo, "dvc", "status", "score@mine")
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    proc = subprocess.run(["dvc", "repro", "--force", "--single-item", "score@mine"], cwd=repo,
                          capture_output=True, text=True, env=env)
    new = hashlib.sha256(file.read_bytes()).hexdigest()
    assert proc.returncode != 0 and new in proc.stdout + proc.stderr
    params["recipes"]["mine"]["params"]["sha256"] = new
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "score@mine" in sh(repo, "dvc", "status", "score@mine")
