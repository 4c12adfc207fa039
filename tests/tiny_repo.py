"""A copy of this repository with a tiny params.yaml, for the tests that run DVC end to end, and
the subprocess helpers they share."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

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
