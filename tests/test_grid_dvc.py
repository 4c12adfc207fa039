"""One table filled by two workers, end to end: clone A runs shard 0/2, clone B runs shard 1/2
through the Slurm script (array variables set by hand), clone C merges. They share a bare git
remote and a local-folder DVC remote. C's table must equal, byte for byte, the table one
machine makes alone, and C must train nothing."""

import re
from pathlib import Path

import pytest

import tiny_repo
from tiny_repo import git, sh

pytestmark = pytest.mark.integration

TINY = {"selectors": ["random", "moderate"], "seeds": [0],
        "pretrain": {"seeds": [0], "epochs": 2}, "train": {"epochs": 2}}
TABLE = ["selectors_x_ratios", "--ratios", "0.1,0.3"]
OUTPUTS = ("selectors_x_ratios.md", "selectors_x_ratios.csv", "selectors_x_ratios.tex")


def table(cwd: Path, *args: str, env: dict | None = None) -> str:
    return sh(cwd, "python", "-m", "coreset.experiments.tables", *TABLE, *args, env=env)


@pytest.fixture(scope="module")
def remotes(tmp_path_factory):
    """A committed, computed and pushed tiny baseline: (origin work tree, bare git remote)."""
    tmp = tmp_path_factory.mktemp("grid")
    origin = tiny_repo.make(tmp / "origin", TINY, commit=False)
    git(origin, "init", "-q")
    sh(origin, "dvc", "remote", "add", "-d", "store", str(tmp / "dvc-store"))
    sh(origin, "dvc", "repro")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "baseline")
    sh(origin, "dvc", "push", "--run-cache")
    bare = tmp / "remote.git"
    git(tmp, "clone", "-q", "--bare", str(origin), str(bare))
    return origin, bare


def test_two_workers_and_a_merge_give_the_single_machine_table(remotes, tmp_path):
    origin, bare = remotes
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
    out_one = table(origin)
    assert "2 to run" in out_one
    for name in OUTPUTS:
        merged = (clone_c / "plots" / "report" / name).read_bytes()
        assert merged == (origin / "plots" / "report" / name).read_bytes(), name
    assert "10%" in (clone_c / "plots" / "report" / OUTPUTS[0]).read_text()
