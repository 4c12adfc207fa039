"""The repository's DVC experiments as plain data: params, recipes and per-seed accuracies.

Source: ``dvc exp show --json`` (the workspace, the baseline commit(s) and their experiments).
Per-seed accuracies come from ``plots/runs.csv`` (written by evaluate, one row per recipe and
seed): it is git-tracked (``cache: false``), so every experiment commit holds it and one
``git cat-file --batch`` pass reads them all. Artifacts kept in the DVC cache (selections,
features) are read per revision with :class:`dvc.api.DVCFileSystem`.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from coreset.experiments.revisions import WORKSPACE, git_blobs

SUMMARY = "metrics/summary.json"
RUNS = "plots/runs.csv"
# Params that never split a table: `seeds` are pooled, `selectors` become rows, and the device
# or thread count do not change what is computed.
IGNORED = frozenset({"seeds", "selectors", "device", "cpu_threads"})


@dataclass(frozen=True)
class Experiment:
    """One completed run of the pipeline: a commit, an experiment or the workspace."""

    rev: str  # commit sha, or "workspace"
    name: str  # experiment / branch name, "" if none
    timestamp: str  # ISO commit time, "" for the workspace
    params: dict[str, Any]  # flattened params.yaml: {"train.epochs": 30, "seeds": (0, 1), ...}
    recipes: tuple[str, ...]  # rows of its metrics/summary.json ("full" included)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params -> {"a.b.c": value}; lists become tuples so that values are hashable."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = freeze(value)
    return flat


def freeze(value: Any) -> Any:
    """Lists -> tuples and mappings -> sorted item tuples, recursively (hashable, comparable)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


def dvc(*args: str, root: str | Path = ".", check: bool = True) -> str:
    """Run the DVC of this interpreter's environment and return its stdout."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"`dvc {' '.join(args)}` failed: " + " | ".join(tail))
    return proc.stdout


def show_json(root: str | Path = ".", all_commits: bool = False) -> list[dict]:
    """The raw records of ``dvc exp show --json`` (nested by file, so names never clash)."""
    out = dvc("exp", "show", "--json", *(["--all-commits"] if all_commits else []), root=root)
    return json.loads(out) if out.strip() else []


def iter_records(records: list[dict]) -> Iterator[tuple[dict, dict | None]]:
    """(rev record, executor) for every baseline and experiment revision in ``records``."""
    for baseline in records:
        yield baseline, None
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                yield rev, exp.get("executor")


def parse_show(records: list[dict]) -> list[Experiment]:
    """Completed experiments: those whose metrics/summary.json and params.yaml could be read.
    Queued, running and failed ones are skipped (see :func:`pending_params`)."""
    exps = []
    for rev, executor in iter_records(records):
        if executor and executor.get("state") not in (None, "success"):
            continue
        data = rev.get("data") or {}
        summary = (data.get("metrics") or {}).get(SUMMARY, {}).get("data")
        params = (data.get("params") or {}).get("params.yaml", {}).get("data")
        if not summary or not params or not summary_recipes(summary):
            continue
        exps.append(Experiment(rev["rev"], rev.get("name") or "", data.get("timestamp") or "",
                               flatten(params), summary_recipes(summary)))
    return exps


def pending_params(records: list[dict]) -> list[dict[str, Any]]:
    """Flattened params of the queued and running experiments (so recipes do not queue twice)."""
    pending = []
    for rev, executor in iter_records(records):
        if executor and executor.get("state") in ("queued", "running", "active"):
            params = ((rev.get("data") or {}).get("params") or {}).get("params.yaml", {})
            if params.get("data"):
                pending.append(flatten(params["data"]))
    return pending


def consistent(exp: Experiment, root: str | Path) -> bool:
    """The workspace counts only when its summary matches its params (not edited since a run)."""
    if exp.rev != WORKSPACE:
        return True
    summary = json.loads((Path(root) / SUMMARY).read_text())
    return summary.get("ratio") == exp.params.get("ratio") and set(summary_recipes(summary)) == {
        "full", *exp.params.get("selectors", ())}


def summary_recipes(summary: dict) -> tuple[str, ...]:
    """The recipes of a metrics/summary.json: keys of ``accuracy`` (``selectors`` before the
    compact format, so that older experiments still read)."""
    return tuple(summary.get("accuracy") or summary.get("selectors") or ())


def prioritised(exps: Iterable[Experiment]) -> list[Experiment]:
    """Newest commit first, the workspace last: where two runs hold the same cell, the first
    wins, so a table never depends on the order DVC lists experiments in."""
    exps = sorted(exps, key=lambda e: e.rev)
    exps = sorted(exps, key=lambda e: e.timestamp, reverse=True)  # stable: ties keep rev order
    return sorted(exps, key=lambda e: e.rev == WORKSPACE)


def load(root: str | Path = ".", all_commits: bool = False) -> list[Experiment]:
    """The completed experiments of the repository at ``root``, in priority order."""
    exps = [e for e in parse_show(show_json(root, all_commits)) if consistent(e, root)]
    return prioritised(exps)


# --- which experiments belong to a table ------------------------------------------------------

def differing(exp: Experiment, context: dict[str, Any], free: Iterable[str]) -> set[str]:
    """Params in which ``exp`` differs from ``context``, besides the table's ``free`` axes.

    A recipe's own settings (``recipes.<name>.*``) count only when the experiment ran it, so
    adding a recipe to params.yaml does not orphan earlier experiments."""
    skip = IGNORED | set(free)
    ran = set(exp.params.get("selectors", ()))
    differ = set()
    for key in exp.params.keys() | context.keys():
        if key in skip or (key.startswith("recipes.") and key.split(".")[1] not in ran):
            continue
        if exp.params.get(key, _MISSING) != context.get(key, _MISSING):
            differ.add(key)
    return differ


_MISSING = object()


def matching(exps: list[Experiment], context: dict[str, Any], free: Iterable[str]
             ) -> tuple[list[Experiment], dict[str, int]]:
    """(experiments that agree with ``context`` outside ``free``, {param: how many left out})."""
    free = tuple(free)
    kept, left_out = [], {}
    for exp in exps:
        keys = differing(exp, context, free)
        if keys:
            for key in keys:
                left_out[key] = left_out.get(key, 0) + 1
        else:
            kept.append(exp)
    return kept, left_out


# --- per-seed accuracies ----------------------------------------------------------------------

def accuracies(exps: list[Experiment], root: str | Path = ".") -> pd.DataFrame:
    """One row per (experiment, recipe, seed): columns rev, selector, seed, accuracy."""
    committed = [(e.rev, RUNS) for e in exps if e.rev != WORKSPACE]
    blobs = dict(zip(committed, git_blobs(root, committed), strict=True))
    frames = []
    for exp in exps:
        if exp.rev == WORKSPACE:
            file = Path(root) / RUNS
            text = file.read_text() if file.exists() else None
        else:
            text = blobs[(exp.rev, RUNS)]
        if text is None:
            continue
        runs = pd.read_csv(io.StringIO(text))
        wanted = runs["selector"].isin(exp.recipes) & runs["seed"].isin(exp.params.get("seeds", ()))
        frames.append(runs.loc[wanted, ["selector", "seed", "accuracy"]].assign(rev=exp.rev))
    columns = ["rev", "selector", "seed", "accuracy"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns].astype({"seed": int, "accuracy": float})
