"""``coreset export RECIPE``: the kept samples of one selection, to train your own model on.

    coreset export moderate                       # the workspace's data/selected/moderate.npz
    coreset export moderate --rev HEAD~1          # a commit, branch or tag
    coreset export moderate --rev bally-sots      # a DVC experiment (its name or its ref)

It writes ``<out>/`` (default ``exports/<rev>/<recipe>/``):

    kept_indices.npy   int64 (k,): indices of the KEPT samples (never the dropped ones) into the
                       TRAINING split, in the order of data/raw/train_images.npy and
                       train_labels.npy (data/train/*.npy has the same order); 0-based, ascending
    kept_weights.npy   float32 (k,): each kept sample's weight (1.0 except for craig / gradmatch;
                       train with sum(w * loss) / sum(w))
    kept.csv           index,weight: the same two arrays as text
    selection.json     provenance: the recipe and its params, its exact variant (defaults filled
                       in, data/variants/<recipe>.json), the whole params.yaml, the code
                       commit, the dataset fingerprint (DVC md5 of data/raw and data/train from
                       dvc.lock, sha256 of train_labels.npy), what the indices refer to, the
                       sha256 of every other file, and the DVC md5 (dvc.lock) of the scores and
                       the selection
    scores.npz         the recipe's scores, byte for byte data/scores/<recipe>.npz
    selection.npz      the selection, byte for byte data/selected/<recipe>.npz
    train_labels.npy   the (possibly noisy) training labels the selection was made with
                       (data/train/labels.npy)
    SHA256SUMS         sha256 of every file above (`sha256sum -c SHA256SUMS` checks them)

`coreset verify <out>` checks every checksum and re-derives the selection from the scores
(coreset.experiments.verify).

Reading a revision other than the workspace goes through :class:`dvc.api.DVCFileSystem`, so the
selection comes from the DVC cache (or remote) without checking anything out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from coreset import safe_yaml
from coreset.experiments.manifest import read_variant
from coreset.experiments.revisions import WORKSPACE, RevisionFiles
from coreset.io import atomic_path, save_json, save_text

FILES = ("kept_indices.npy", "kept_weights.npy", "kept.csv", "selection.json")
# copied byte for byte from the revision: release name -> path in the repository ({} = recipe)
COPIES = {"scores.npz": "data/scores/{}.npz", "selection.npz": "data/selected/{}.npz",
          "train_labels.npy": "data/train/labels.npy"}
SUMS = "SHA256SUMS"
REFERS_TO = ("indices of the KEPT samples (everything else was dropped) into the TRAINING split, "
             "0-based, in the order of data/raw/train_images.npy and data/raw/train_labels.npy "
             "(data/train/*.npy, the perturbed training split, has the same order)")


class ExportError(ValueError):
    """Nothing to export: a missing recipe, revision or selection; printed as one line."""


def code_commit(root: Path, rev: str) -> tuple[str, bool]:
    """(the commit sha of ``rev``, whether the workspace has uncommitted changes; False for a
    committed revision). Experiment names resolve as in ``dvc exp show``."""
    from dvc.repo import Repo
    from dvc.scm import RevError, resolve_rev

    with Repo(str(root)) as repo:
        try:
            sha = resolve_rev(repo.scm, "HEAD" if rev == WORKSPACE else rev)
        except RevError as err:
            raise ExportError(f"--rev {rev}: not a commit, branch, tag or experiment ({err})"
                              ) from None
    dirty = rev == WORKSPACE and bool(subprocess.run(
        ["git", "status", "--porcelain", "--", "params.yaml", "dvc.lock", "dvc.yaml", "src"],
        cwd=root, capture_output=True, text=True, check=True).stdout.strip())
    return sha, dirty


def stage_out_md5(lock: dict[str, Any], stage: str, path: str) -> str | None:
    """The md5 that dvc.lock records for the output ``path`` of ``stage`` (None if absent)."""
    for out in (lock.get("stages", {}).get(stage, {}) or {}).get("outs", []):
        if out.get("path") == path:
            return out.get("md5")
    return None


def provenance(files: RevisionFiles, recipe: str, rev: str, commit: str, dirty: bool,
               n_kept: int) -> dict[str, Any]:
    """selection.json: everything needed to trust and reproduce the exported indices."""
    params = safe_yaml.loads(files.read("params.yaml"), "params.yaml")
    lock = yaml.safe_load(files.read("dvc.lock")) if files.exists("dvc.lock") else {}
    labels = files.read("data/raw/train_labels.npy")
    n_train = len(np.load(io.BytesIO(labels), allow_pickle=False))
    return {
        "what": "kept",
        "recipe": recipe,
        "selector": params.get("recipes", {}).get(recipe, {}),
        # every parameter as the selecting code filled its defaults (data/variants), or
        # "unrecorded" for a selection made before variants were written
        "variant": read_variant(files, recipe),
        "ratio": params.get("ratio"),
        "seed": params.get("seed"),
        "kept": n_kept,
        "n_train": n_train,
        "indices_refer_to": REFERS_TO,
        "weights": "kept_weights.npy: train with sum(w * loss) / sum(w); 1.0 = unweighted",
        "dataset": {
            "name": params.get("data", {}).get("dataset"),
            "split": "train",
            "dvc_md5": {"data/raw": stage_out_md5(lock, "download", "data/raw"),
                        "data/train": stage_out_md5(lock, "corrupt", "data/train")},
            "train_labels_sha256": hashlib.sha256(labels).hexdigest(),
        },
        "code": {"rev": rev, "commit": commit, "uncommitted_changes": dirty},
        "params": params,
    }


def export(root: Path, recipe: str, rev: str, out: Path) -> list[Path]:
    """Write the files of one release of a selection to ``out``; their paths."""
    commit, dirty = code_commit(root, rev)
    files = RevisionFiles(root, WORKSPACE if rev == WORKSPACE else commit)
    selected = f"data/selected/{recipe}.npz"
    if not files.exists(selected):
        raise ExportError(f"{selected} is not in revision {rev!r}: is {recipe!r} in its "
                          "`selectors` and did `dvc repro` (or `dvc pull`) run?")
    indices = np.asarray(files.array(selected, "indices"), dtype=np.int64)
    weights = np.asarray(files.array(selected, "weights"), dtype=np.float32)
    order = np.argsort(indices, kind="stable")  # ascending: the order of the training split
    indices, weights = indices[order], weights[order]
    meta = provenance(files, recipe, rev, commit, dirty, len(indices))
    copies = {name: files.read(path.format(recipe)) for name, path in COPIES.items()}
    lock = yaml.safe_load(files.read("dvc.lock")) if files.exists("dvc.lock") else {}
    meta["dvc_md5"] = {"scores": stage_out_md5(lock, f"score@{recipe}",
                                               COPIES["scores.npz"].format(recipe)),
                       "selected": stage_out_md5(lock, f"select@{recipe}",
                                                 COPIES["selection.npz"].format(recipe))}
    return write_release(out, indices, weights, meta, copies)


def write_release(out: Path, indices: np.ndarray, weights: np.ndarray, meta: dict[str, Any],
                  copies: dict[str, bytes]) -> list[Path]:
    """The release files in ``out``: the kept arrays, ``copies`` (name -> bytes, the keys of
    :data:`COPIES`), selection.json (``meta`` plus every file's sha256) and SHA256SUMS."""
    paths = [out / name for name in FILES]
    for path, array in zip(paths[:2], (indices, weights), strict=True):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    save_text(paths[2], "index,weight\n" + "".join(f"{i},{w:.9g}\n"
                                                    for i, w in zip(indices, weights, strict=True)))
    for name, data in copies.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
    data_files = [*paths[:3], *(out / name for name in copies)]
    save_json(paths[3], {**meta, "files": {p.name: _sha256(p) for p in data_files}})
    everything = [*paths, *(out / name for name in copies)]
    save_text(out / SUMS, "".join(f"{_sha256(p)}  {p.name}\n" for p in everything))
    return [*everything, out / SUMS]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # as in params.yaml (coreset.config)


def dvc_outputs(root: Path) -> list[Path]:
    """The outputs that dvc.yaml declares (outs, metrics, plots), as paths relative to ``root``;
    a templated one (``data/scores/${item.selector}.npz``) as its folder."""
    file = root / "dvc.yaml"
    stages = (safe_yaml.load(file).get("stages") or {}) if file.is_file() else {}
    paths = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in (stage or {}).get(kind, []) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                if "${" in path:
                    path = path[: path.index("${")].rsplit("/", 1)[0]
                paths.add(Path(path))
    return sorted(paths)


def check_target(root: Path, recipe: str, out: Path, force: bool) -> None:
    """Refuse, before anything is read or written: a recipe name that is not a name (``../x``,
    a path separator), an output folder inside what DVC tracks (``--out data/raw`` would be
    overwritten by, or corrupt, the pipeline's outputs) or git's and DVC's own folders, and
    existing export files unless ``force``."""
    if not RECIPE_NAME.fullmatch(recipe):
        raise ExportError(f"recipe {recipe!r} is not allowed: a recipe name of letters, digits, "
                          "_ and - (no path separators, no '..')")
    target = (out if out.is_absolute() else Path.cwd() / out).resolve()
    base = root.resolve()
    for tracked in [*dvc_outputs(root), Path(".dvc"), Path(".git")]:
        if target.is_relative_to(base / tracked):
            raise ExportError(f"--out {out} is not allowed: it is inside {tracked}, which DVC or "
                              "git manages (a repro or checkout would overwrite the export, or "
                              "the export the pipeline's outputs); choose a folder outside it, "
                              "e.g. exports/")
    existing = [out / name for name in FILES if (out / name).exists()]
    if existing and not force:
        raise ExportError(f"{existing[0]} exists: not overwritten; pass --force to replace the "
                          f"export in {out}, or choose another --out")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="coreset export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="a recipe of params.yaml that the revision ran, e.g. moderate")
    ap.add_argument("--rev", default=WORKSPACE,
                    help="commit, branch, tag or DVC experiment name (default: the workspace)")
    ap.add_argument("--out", type=Path, help="output folder (default exports/<rev>/<recipe>)")
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root")
    ap.add_argument("--force", action="store_true", help="replace an existing export")
    args = ap.parse_args(argv)
    rev_folder = args.rev.replace("/", "_").replace("\\", "_")
    out = args.out or Path("exports") / ("_" + rev_folder if rev_folder.startswith(".")
                                         else rev_folder) / args.recipe
    try:
        check_target(args.root, args.recipe, out, args.force)
        paths = export(args.root, args.recipe, args.rev, out)
    except (ExportError, safe_yaml.YamlError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(f"export: {args.recipe} at {args.rev}: " + " ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
