"""``<table>_manifest.csv`` next to a table: one row per training run that the table reads.

Each row joins three sources: the experiment (its commit, i.e. the code revision, the sha256 of
its whole params.yaml and its seeds), the train stage's manifest (coreset.training.manifest:
protocol, steps, samples seen, device type) read from the experiment's DVC outputs, and the run
record of the run log (wall time, device name, host). A run that DVC restored from the run-cache
(or that ran where this repository's run log is not) has no record here: its wall-time columns
are empty and ``run_record`` says ``missing``.

``variant`` is the exact selector variant of the cell's recipe, as its select stage wrote it
(``data/variants/<recipe>.json``, params.Recipe.variant: method, every parameter with the
defaults of the code that ran, window, window parameters, balance) in canonical JSON; ``full``
for the full-data row, ``unrecorded`` for a selection made before variants were written.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from coreset import artifacts
from coreset.experiments.report.experiments import Experiment
from coreset.experiments.revisions import WORKSPACE, RevisionFiles
from coreset.training import manifest

COLUMNS = ("table", "cell", "experiment", "code_rev", "exp_params_sha256", "recipe", "variant",
           "seed", "selection_seed", "pretrain_seeds", "corrupt_seed", "params_sha256",
           "selection_sha256", "n_train", "budget", "epochs", "steps", "batch_size",
           "dynamic", "steps_run", "samples_seen", "epochs_run", "device_type", "device",
           "wall_s", "host", "finished", "run_record", "run_key")
# columns that depend on where and when a run happened, not on what it computed
RUN_COLUMNS = ("experiment", "code_rev", "device", "wall_s", "host", "finished", "run_record")


def exp_params_sha256(params: dict[str, Any]) -> str:
    """sha256 of an experiment's flattened params (the identity of a table cell)."""
    return hashlib.sha256(manifest.canonical(sorted(params.items()))).hexdigest()


def rows(table: str, cells: Iterable[tuple[str, Experiment]], root: Path,
         run_log: Path) -> list[dict[str, Any]]:
    """One row per (cell, recipe, training seed), in cell order, then recipe, then seed."""
    out = []
    for cell, exp in cells:
        files = RevisionFiles(root, exp.rev)
        for recipe in exp.recipes:
            chosen = variant(files, recipe)
            for seed in sorted(exp.params.get("seeds", ())):
                row = _row(table, cell, exp, files, recipe, int(seed), run_log)
                out.append(row | {"variant": chosen})
    return out


def read_variant(files: RevisionFiles, recipe: str) -> dict[str, Any] | str:
    """The recipe's variant as its select stage recorded it (data/variants/<recipe>.json);
    ``full`` for the full-data row, ``unrecorded`` when the revision has none."""
    if recipe == "full":
        return "full"
    try:
        raw = files.read(f"{artifacts.VARIANTS.as_posix()}/{recipe}.json")
    except (FileNotFoundError, OSError):
        return "unrecorded"
    return json.loads(raw)


def variant(files: RevisionFiles, recipe: str) -> str:
    """:func:`read_variant` as the CSV column holds it: canonical JSON (sorted keys)."""
    found = read_variant(files, recipe)
    return found if isinstance(found, str) else manifest.canonical(found).decode()


def _row(table: str, cell: str, exp: Experiment, files: RevisionFiles, recipe: str, seed: int,
         run_log: Path) -> dict[str, Any]:
    p = exp.params
    row: dict[str, Any] = {
        "table": table, "cell": cell, "experiment": exp.name or exp.rev[:7],
        "code_rev": exp.rev, "exp_params_sha256": exp_params_sha256(p), "recipe": recipe,
        "seed": seed, "selection_seed": p.get("seed"),
        "pretrain_seeds": " ".join(map(str, p.get("pretrain.seeds", ()))),
        "corrupt_seed": p.get("corrupt.seed")}
    path = f"{manifest.MANIFEST.as_posix()}/{recipe}-{seed}.json"
    try:
        raw = files.read(path)
    except (FileNotFoundError, OSError):
        return row | {"run_record": "no manifest (run before manifests existed)"}
    m = json.loads(raw)
    proto = m.get("protocol", {})
    row |= {k: m.get(k) for k in ("params_sha256", "selection_sha256", "n_train", "steps_run",
                                  "samples_seen", "epochs_run", "device_type")}
    row |= {k: proto.get(k) for k in ("budget", "epochs", "steps", "batch_size", "dynamic")}
    key = manifest.key(raw)
    record = run_log / f"{key}.json"
    row["run_key"] = key
    if record.exists():
        r = json.loads(record.read_text())
        row |= {k: r.get(k) for k in ("device", "wall_s", "host", "finished")}
        row["run_record"] = "found"
    else:
        row["run_record"] = "missing (restored from the run-cache, or run elsewhere)"
    if exp.rev == WORKSPACE:
        row["code_rev"] = WORKSPACE
    return row


def to_csv(rows_: list[dict[str, Any]]) -> str:
    """The rows as CSV with the columns in :data:`COLUMNS` order."""
    frame = pd.DataFrame(rows_, columns=list(COLUMNS))
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
