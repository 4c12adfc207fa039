"""End to end through DVC, on a copy of the repository with a tiny config: what reruns after a
change, and that reruns reproduce the same bytes."""

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import tiny_repo
from tiny_repo import sh

pytestmark = pytest.mark.integration


def ran(output: str) -> set[str]:
    """The stages that ran, besides `check` (always_changed: it validates params.yaml on every
    repro, with the same output bytes, so it never makes another stage stale)."""
    return set(re.findall(r"Running stage '([^']+)'", output)) - {"check"}


def restored(output: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run", output))


def skipped(output: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", output))


def digest(repo: Path, *globs: str) -> dict[str, str]:
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for g in globs for p in sorted(repo.glob(g))}


@pytest.fixture(scope="module")
def repo(tiny_built, tmp_path_factory) -> Path:
    """A copy of the computed tiny baseline (tiny_repo.BASELINE), its own DVC cache included."""
    return tiny_repo.copy_built(tiny_built[0], tmp_path_factory.mktemp("repo") / "repo")


UPSTREAM = {"download", "attacker", "corrupt", "pretrain", "embed"}


def test_pipeline_end_to_end_and_incremental_reruns(repo, tiny_built):
    first = tiny_built[1]  # the baseline's `dvc repro`, in a fresh repository with no cache
    expected = UPSTREAM | {"score@random", "select@moderate", "train@random-0", "evaluate"}
    assert expected <= ran(first)
    summary = yaml.safe_load((repo / "metrics" / "summary.json").read_text())
    assert set(summary["accuracy"]) == set(summary["std"]) == {"full", "random", "moderate"}
    kept = (repo / "plots" / "accuracy.csv").read_text().splitlines()
    assert kept[0].split(",")[3] == "kept" and kept[2].split(",")[:4:3] == ["random", "287"]
    outputs = ("data/dynamics.npz", "data/embed.npz", "data/selected/*.npz",
               "metrics/train/*.json", "models/pretrain/*.pt", "models/attacker.pt",
               "plots/runs.csv")
    before = digest(repo, *outputs)

    # the ratio: only select, train and evaluate rerun
    out = sh(repo, "dvc", "exp", "run", "-S", "ratio=0.1")
    assert ran(out) == {"select@random", "select@moderate", "train@random-0",
                        "train@moderate-0", "evaluate"}
    assert UPSTREAM | {"score@random", "score@moderate", "train_full@0"} <= skipped(out)

    # back to the baseline's ratio: every stage, train and evaluate included, is restored from
    # DVC's run-cache; nothing is recomputed
    out = sh(repo, "dvc", "exp", "run", "-S", "ratio=0.2")
    assert ran(out) == set()
    assert {"select@random", "train@moderate-0", "evaluate"} <= restored(out)
    assert digest(repo, *outputs) == before

    # one selector's parameter: only that selector's stages rerun
    out = sh(repo, "dvc", "exp", "run", "-S", "recipes.moderate.params.center=mean")
    assert ran(out) == {"score@moderate", "select@moderate", "train@moderate-0", "evaluate"}

    # the label-noise rate: everything from corrupt on, never download
    out = sh(repo, "dvc", "exp", "run", "-S", "corrupt.label_noise.rate=0.2")
    assert {"corrupt", "pretrain", "embed", "score@random", "train_full@0"} <= ran(out)
    assert {"download", "attacker"} <= skipped(out)
    noisy = yaml.safe_load((repo / "metrics" / "summary.json").read_text())
    assert noisy["perturbed"] == pytest.approx(round(0.2 * 1437) / 1437)

    # back to the committed params: every stage comes back from DVC's run-cache
    sh(repo, "git", "checkout", "params.yaml")
    out = sh(repo, "dvc", "repro")
    assert ran(out) == set()
    assert digest(repo, *outputs) == before
    # ... and recomputing the chain from pretraining on gives the same bytes (determinism),
    # checkpoints included: their bytes must not depend on the temp name of the atomic write
    chain = ("pretrain", "embed", "score@moderate", "select@moderate", "train@moderate-0")
    out = sh(repo, "dvc", "repro", "--force", "--single-item", *chain)
    assert ran(out) == set(chain)
    assert digest(repo, *outputs) == before


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    return subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=env)


def test_an_invalid_file_never_exits_0_and_removes_nothing(repo):
    """Every stage is up to date (the test above ran the pipeline): an invalid key that feeds no
    stale stage still fails `dvc repro` (the check stage runs on every repro) with the one line,
    and no output is removed; `dvc exp run` with an unknown key records no experiment."""
    outputs = ("data/**/*.npz", "data/raw/*", "metrics/**/*.json", "plots/*.csv",
               "metrics/summary.md", "data/params.ok")
    before = digest(repo, *outputs)
    experiments = dvc(repo, "exp", "list", "--name-only").stdout
    params = (repo / "params.yaml").read_text()
    unselected = yaml.safe_load(params)
    unselected["recipes"]["cal"]["window"] = "mid"  # cal is not in `selectors`
    for text in (params + "\nratoi: 0.3\n", yaml.safe_dump(unselected, sort_keys=False),
                 params + "\nseed: 1\n"):  # a key given twice: DVC's own parser refuses it
        (repo / "params.yaml").write_text(text)
        proc = dvc(repo, "repro")
        assert proc.returncode != 0, proc.stdout[-2000:]
        errors = [x for x in proc.stderr.splitlines() if x.startswith("error: params.yaml")]
        assert len(errors) == 1 or "duplicate key" in proc.stderr, proc.stderr
        assert digest(repo, *outputs) == before
    sh(repo, "git", "checkout", "params.yaml")
    proc = dvc(repo, "exp", "run", "-S", "+ratoi=0.3")
    assert proc.returncode != 0
    assert "error: params.yaml: ratoi = 0.3 is not allowed" in proc.stderr
    assert dvc(repo, "exp", "list", "--name-only").stdout == experiments
    sh(repo, "git", "checkout", "params.yaml")
    assert digest(repo, *outputs) == before


def test_evaluate_depends_on_exactly_the_current_grid(repo):
    """After `selectors` shrinks, the removed recipe's files leave evaluate's folders (the check
    stage prunes them): the same grid gives the same evaluate deps whatever ran in between, so
    it is restored from the run-cache instead of rerun."""
    sh(repo, "dvc", "exp", "run", "-S", "selectors=[random]", "-S", "ratio=0.1")
    assert sorted(p.name for p in (repo / "data/selected").glob("*.npz")) == ["random.npz"]
    assert sorted(p.name for p in (repo / "metrics/train").glob("*.json")) == [
        "full-0.json", "random-0.json"]
    sh(repo, "dvc", "exp", "run", "-S", "selectors=[random,moderate]", "-S", "ratio=0.1")
    out = sh(repo, "dvc", "exp", "run", "-S", "selectors=[random]", "-S", "ratio=0.1")
    assert "evaluate" not in ran(out)
    assert "evaluate" in restored(out)
    sh(repo, "git", "checkout", "params.yaml")
