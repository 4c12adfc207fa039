"""One table filled by two workers, end to end: clone A runs shard 0/2, clone B runs shard 1/2
through the Slurm script (array variables set by hand), clone C merges. They share a bare git
remote and a local-folder DVC remote. C's table must equal, byte for byte, the table one
machine makes alone, and C must train nothing. The same table from two submitit jobs (its local
executor), each in a clone sharing one DVC cache, equals it too; the manifest of every table
names each training run with its protocol, samples seen and wall time."""

import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

import tiny_repo
from coreset.experiments.manifest import RUN_COLUMNS
from tiny_repo import git, sh

pytestmark = pytest.mark.integration

TABLE = ["selectors_x_ratios", "--ratios", "0.1,0.3"]
OUTPUTS = ("selectors_x_ratios.md", "selectors_x_ratios.csv", "selectors_x_ratios.tex")
MANIFEST = "selectors_x_ratios_manifest.csv"


def table(cwd: Path, *args: str, env: dict | None = None) -> str:
    return sh(cwd, "python", "-m", "coreset.experiments.tables", *TABLE, *args, env=env)


@pytest.fixture(scope="module")
def remotes(tmp_path_factory, tiny_built):
    """A committed, computed and pushed tiny baseline: (origin work tree, bare git remote)."""
    tmp = tmp_path_factory.mktemp("grid")
    origin = tiny_repo.copy_built(tiny_built[0], tmp / "origin")
    sh(origin, "dvc", "remote", "add", "-d", "store", str(tmp / "dvc-store"))
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "baseline")
    sh(origin, "dvc", "push", "--run-cache")
    bare = tmp / "remote.git"
    git(tmp, "clone", "-q", "--bare", str(origin), str(bare))
    return origin, bare


@pytest.fixture(scope="module")
def single(remotes):
    """The table one machine makes alone (the origin, whose cache holds the baseline): its
    command output and its report files."""
    origin, _ = remotes
    out = table(origin)
    return out, {name: (origin / "plots" / "report" / name).read_bytes()
                 for name in (*OUTPUTS, MANIFEST)}


def test_two_workers_and_a_merge_give_the_single_machine_table(remotes, single, tmp_path):
    _, bare = remotes
    clone_a, clone_c = tmp_path / "a", tmp_path / "c"
    git(tmp_path, "clone", "-q", str(bare), str(clone_a))
    out_a = table(clone_a, "--shard", "0/2", "--git-remote", "origin")
    assert "shard 0/2: 1 of 2 experiment(s)" in out_a

    # worker B: the Slurm array script, with the variables Slurm would set
    script = clone_a / "src" / "coreset" / "scripts" / "slurm_array.sh"
    slurm = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2",
             "SLURM_ARRAY_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "1",
             "CORESET_REPO": str(bare), "CORESET_WORKDIR": str(tmp_path)}
    clone_b = tmp_path / "coreset-7-1"
    out_b = sh(tmp_path, "bash", str(script), *TABLE,
               env={**slurm, "PYTHONPATH": str(clone_b / "src")})
    assert "shard 1/2: 1 of 2 experiment(s)" in out_b
    assert (clone_b / ".git").is_dir()

    # the merge: pulls both workers' experiments, trains nothing
    git(tmp_path, "clone", "-q", str(bare), str(clone_c))
    out_c = table(clone_c, "--merge", "--git-remote", "origin")
    assert not re.search(r"Running stage|dvc exp run", out_c)
    assert not (clone_c / "metrics" / "train").exists()  # no stage ran in C's workspace

    # one machine alone (the origin, whose cache holds the baseline) makes the same table
    out_one, files = single
    assert "2 to run" in out_one
    for name in OUTPUTS:
        assert (clone_c / "plots" / "report" / name).read_bytes() == files[name], name
    assert "10%" in (clone_c / "plots" / "report" / OUTPUTS[0]).read_text()


def test_the_manifest_names_every_training_run_with_its_protocol_and_wall_time(single):
    _, files = single
    rows = pd.read_csv(_csv(files[MANIFEST]))
    # 2 cells (ratios) x (random, moderate, full) x training seed 0
    assert len(rows) == 6 and set(rows["recipe"]) == {"random", "moderate", "full"}
    assert rows["cell"].tolist()[:3] == ["ratio=0.1"] * 3
    # every run trained here: its run record holds the wall time and the device
    assert (rows["run_record"] == "found").all() and (rows["wall_s"] > 0).all()
    assert set(rows["device"]) == {"cpu"} and set(rows["device_type"]) == {"cpu"}
    # static selections, an epochs budget: each epoch sees every kept sample once
    assert (rows["samples_seen"] == rows["epochs_run"] * rows["n_train"]).all()
    steps = [r.epochs_run * math.ceil(r.n_train / r.batch_size) for r in rows.itertuples()]
    assert rows["steps_run"].tolist() == steps
    epochs = tiny_repo.BASELINE["train"]["epochs"]
    assert (rows["budget"] == "epochs").all() and (rows["epochs"] == epochs).all()
    assert set(rows.loc[rows["recipe"] == "full", "n_train"]) == {1437}
    assert rows["code_rev"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert rows["exp_params_sha256"].nunique() == 2  # one identity per cell
    # each cell's exact variant, as select wrote it (moderate's default center filled in)
    variants = dict(zip(rows["recipe"], rows["variant"], strict=False))
    assert variants["full"] == "full"
    assert json.loads(variants["moderate"]) == {
        "method": "moderate", "params": {"center": "median"}, "window": "moderate",
        "window_params": {}, "balance": False}


def test_submitit_local_jobs_fill_the_single_machine_table(remotes, single, tmp_path):
    _, bare = remotes
    root = tmp_path / "root"
    git(tmp_path, "clone", "-q", str(bare), str(root))
    out = table(root, "--submitit", "local", "--workers", "2")
    assert "2 submitit job(s) on local" in out
    cache = str((root / ".dvc" / "cache").resolve())
    for k in range(2):  # one clone per job, its DVC cache the root's
        clone = root / ".dvc" / "tmp" / "submitit" / f"shard-{k}-of-2"
        assert cache in (clone / ".dvc" / "config.local").read_text()
        assert not (clone / ".dvc" / "cache").exists()
    _, files = single
    for name in OUTPUTS:
        assert (root / "plots" / "report" / name).read_bytes() == files[name], name
    # the manifest agrees on everything but where and when each run happened
    mine = pd.read_csv(root / "plots" / "report" / MANIFEST).drop(columns=list(RUN_COLUMNS))
    theirs = pd.read_csv(_csv(files[MANIFEST])).drop(columns=list(RUN_COLUMNS))
    pd.testing.assert_frame_equal(mine, theirs)


def _csv(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
