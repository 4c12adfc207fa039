"""A copy of this repository with a tiny params.yaml, for the tests that run DVC end to end, and
the subprocess helpers they share.

Most end-to-end tests start from the same computed baseline (:data:`BASELINE`: the
``coreset table --tiny`` settings, two selectors). :func:`built` computes it once per test
session, for every pytest-xdist worker, and :func:`copy_built` gives each test its own copy (work
tree, git history and DVC cache), so a test sees exactly the stages it runs itself."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from coreset.experiments.tables import TINY

ROOT = Path(__file__).resolve().parents[1]
FILES = ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml")
FOLDERS = ("src", ".dvc/plots", "docs/examples")


def merge(tree: dict, over: dict) -> dict:
    """``over`` merged into ``tree`` (nested dicts merge; other values replace)."""
    for key, value in over.items():
        tree[key] = merge(tree[key], value) if isinstance(value, dict) else value
    return tree


def make(dest: Path, overrides: dict, commit: bool = True, cache: Path | None = None) -> Path:
    """The repository's code, DVC config and plot templates in ``dest``, with params.yaml merged
    with ``overrides``; a git repository with one commit unless ``commit`` is False.

    ``cache``: a DVC cache directory shared with other copies (``.dvc/config.local``), so that a
    stage another test already ran with the same deps and params is restored from the run-cache
    instead of recomputed. Tests that assert which stages run keep a cache of their own."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(ROOT / name, dest / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    if cache is not None:
        (dest / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n")
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if commit:
        git(dest, "init", "-q")
        git(dest, "add", "-A")
        git(dest, "commit", "-qm", "tiny")
    return dest


def sh(cwd: Path, *cmd: str, env: dict | None = None) -> str:
    """Run ``cmd`` with the copy's own code on PYTHONPATH; its output, or a failed assertion."""
    full = {**os.environ, "PYTHONPATH": str(cwd / "src"), **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def git(cwd: Path, *args: str) -> str:
    return sh(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


def _tree(dotted: dict) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    tree: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


# the committed baseline of `coreset table --tiny` (its experiments' settings), two selectors
BASELINE = merge(_tree(TINY), {"selectors": ["random", "moderate"]})


def built(base: Path) -> tuple[Path, str]:
    """The :data:`BASELINE` copy with ``dvc repro`` run (params committed, outputs not), and that
    repro's output. Built once under ``base`` by whichever process asks first (a file lock: the
    others wait for it), then reused; copy it with :func:`copy_built` before changing anything."""
    repo, log = base / "tiny_built", base / "tiny_built.log"
    with open(base / "tiny_built.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():  # written last: a repro that failed halfway is built again
            shutil.rmtree(repo, ignore_errors=True)
            make(repo, BASELINE)
            log.write_text(sh(repo, "dvc", "repro"))
    return repo, log.read_text()


def copy_built(source: Path, dest: Path) -> Path:
    """A copy of a built repository, its DVC cache (and run-cache) included: runs in the copy
    change nothing that another test sees. DVC's state database keys file hashes by inode, so
    the copy's outputs are hashed afresh (the same md5s), never trusted from the source."""
    shutil.copytree(source, dest, symlinks=True)
    return dest
