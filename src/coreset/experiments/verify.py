"""``coreset verify DIR``: check a released selection (``coreset export``) end to end.

1. Every file named in ``SHA256SUMS`` exists and has that sha256 (``sha256sum -c`` agrees), and
   ``SHA256SUMS`` covers every file of the release.
2. ``selection.json``'s own checksums agree, and the DVC md5 it records for the scores and the
   selection (copied from dvc.lock) is the md5 of ``scores.npz`` and ``selection.npz``.
3. ``kept.csv``, ``kept_indices.npy``/``kept_weights.npy`` and ``selection.npz`` hold the same
   indices and weights.
4. The selection is re-derived from ``scores.npz`` and ``train_labels.npy`` with the recipe's
   window, balance, ratio and seed (coreset.scores.selection.select, the select stage's own
   call): the kept indices must be exactly those (Craig / GradMatch weigh the chosen subset with
   the training data and drop zero-weight samples: there the kept indices must be a subset of
   it, and the weights are checked by checksum only; every other recipe's weights must be 1).
5. With ``--root REPO``: the DVC md5s agree with REPO's dvc.lock at the release's commit.

The first failure is printed as one line and the exit status is 1 (2 for a missing folder).
Cost: O(n log n) for the re-derivation (a sort per class), n the training-split size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SUMS = "SHA256SUMS"


class VerifyError(ValueError):
    """The release does not check out; one line naming the file and what disagrees."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` as {file name: sha256} (the ``sha256sum`` format: ``HASH  NAME``)."""
    path = folder / SUMS
    if not path.exists():
        raise VerifyError(f"{path}: missing (not a release written by `coreset export`)")
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name:
            raise VerifyError(f"{path}:{number}: not a `HASH  NAME` line: {line!r}")
        sums[name] = digest
    return sums


def check_sums(folder: Path) -> dict[str, str]:
    """Step 1; the checksums."""
    sums = read_sums(folder)
    present = {p.name for p in folder.iterdir() if p.is_file()} - {SUMS}
    if present - sums.keys():
        raise VerifyError(f"{folder}: {', '.join(sorted(present - sums.keys()))} not in {SUMS}")
    for name, digest in sums.items():
        file = folder / name
        if not file.is_file():
            raise VerifyError(f"{file}: listed in {SUMS} but missing")
        if sha256(file) != digest:
            raise VerifyError(f"{file}: sha256 {sha256(file)} differs from {SUMS} ({digest})")
    return sums


def check_meta(folder: Path, meta: dict[str, Any], sums: dict[str, str]) -> None:
    """Step 2."""
    for name, digest in (meta.get("files") or {}).items():
        if sums.get(name) != digest:
            raise VerifyError(f"{folder / 'selection.json'}: files.{name} = {digest} differs "
                              f"from {SUMS} ({sums.get(name)})")
    for name, key in (("scores.npz", "scores"), ("selection.npz", "selected")):
        md5 = hashlib.md5((folder / name).read_bytes()).hexdigest()
        recorded = (meta.get("dvc_md5") or {}).get(key)
        if recorded != md5:
            raise VerifyError(f"{folder / name}: md5 {md5} differs from selection.json "
                              f"dvc_md5.{key} ({recorded})")


def check_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Step 3; the kept (indices, weights)."""
    kept = np.load(folder / "kept_indices.npy", allow_pickle=False)
    weights = np.load(folder / "kept_weights.npy", allow_pickle=False)
    with np.load(folder / "selection.npz", allow_pickle=False) as z:
        order = np.argsort(z["indices"], kind="stable")
        sel_idx, sel_w = z["indices"][order], z["weights"][order]
    if not (np.array_equal(kept, sel_idx) and np.array_equal(weights, sel_w.astype(np.float32))):
        raise VerifyError(f"{folder / 'kept_indices.npy'}: kept indices or weights differ from "
                          "selection.npz")
    table = np.loadtxt(folder / "kept.csv", delimiter=",", skiprows=1, ndmin=2)
    if len(table) != len(kept) or not (np.array_equal(table[:, 0].astype(np.int64), kept)
                                       and np.allclose(table[:, 1], weights, rtol=1e-7)):
        raise VerifyError(f"{folder / 'kept.csv'}: differs from kept_indices.npy / "
                          "kept_weights.npy")
    return kept, weights


def rederive(folder: Path, meta: dict[str, Any], kept: np.ndarray, weights: np.ndarray) -> int:
    """Step 4; the number of samples the rule picks."""
    from coreset.config import parse
    from coreset.scores.inputs import selection_rng
    from coreset.scores.registry import get
    from coreset.scores.selection import select

    p = parse(meta["params"])
    recipe = p.recipes[meta["recipe"]]
    with np.load(folder / "scores.npz", allow_pickle=False) as z:
        scores = z["score"]
    labels = np.load(folder / "train_labels.npy", allow_pickle=False)
    if len(scores) != len(labels) or len(labels) != meta.get("n_train"):
        raise VerifyError(f"{folder / 'scores.npz'}: {len(scores)} scores, {len(labels)} labels, "
                          f"selection.json says n_train = {meta.get('n_train')}")
    picked = select(scores, labels, p.ratio, recipe.window, recipe.balance,
                    selection_rng(p, recipe.method, 1))
    weighed = get(recipe.method).weigher is not None
    if not weighed and not np.all(weights == 1):
        raise VerifyError(f"{folder / 'kept_weights.npy'}: {int(np.sum(weights != 1))} weights "
                          f"differ from 1, but {recipe.method} does not weigh its selection")
    ok = np.isin(kept, picked).all() if weighed else np.array_equal(kept, picked)
    if not ok:
        differ = len(np.setxor1d(kept, picked))
        raise VerifyError(f"{folder / 'kept_indices.npy'}: not the selection its scores give "
                          f"({recipe.window}, ratio {p.ratio}): {differ} indices differ")
    return len(picked)


def check_repo(folder: Path, meta: dict[str, Any], root: Path) -> None:
    """Step 5: the md5s that the repository's dvc.lock records at the release's commit."""
    commit = meta["code"]["commit"]
    proc = subprocess.run(["git", "show", f"{commit}:dvc.lock"], cwd=root, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise VerifyError(f"--root {root}: commit {commit} (selection.json code.commit) has no "
                          "dvc.lock there")
    lock = yaml.safe_load(proc.stdout) or {}
    recipe = meta["recipe"]
    for stage, path, key in ((f"score@{recipe}", f"data/scores/{recipe}.npz", "scores"),
                             (f"select@{recipe}", f"data/selected/{recipe}.npz", "selected")):
        outs = (lock.get("stages", {}).get(stage) or {}).get("outs", [])
        md5 = next((o.get("md5") for o in outs if o.get("path") == path), None)
        if md5 != meta["dvc_md5"][key]:
            raise VerifyError(f"{folder / 'selection.json'}: dvc_md5.{key} = "
                              f"{meta['dvc_md5'][key]}, but dvc.lock of {commit[:12]} in {root} "
                              f"records {md5} for {path}")


def verify(folder: Path, root: Path | None = None) -> str:
    """Run every check; a one-line summary. Raises VerifyError at the first failure."""
    sums = check_sums(folder)
    meta = json.loads((folder / "selection.json").read_text())
    check_meta(folder, meta, sums)
    kept, weights = check_arrays(folder)
    picked = rederive(folder, meta, kept, weights)
    if root is not None:
        check_repo(folder, meta, root)
    return (f"verify: {folder}: OK ({len(sums)} checksums, {len(kept)} kept re-derived from "
            f"{meta['n_train']} scores" + (f", {picked} before weighing" if picked != len(kept)
                                            else "") + (f", dvc.lock of {root}" if root else "")
            + ")")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="coreset verify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("release", type=Path, help="a folder written by `coreset export`")
    ap.add_argument("--root", type=Path,
                    help="also check the DVC md5s against this repository's dvc.lock")
    args = ap.parse_args(argv)
    if not args.release.is_dir():
        print(f"error: {args.release}: not a folder (give the folder `coreset export` wrote)",
              file=sys.stderr)
        return 2
    try:
        print(verify(args.release, args.root))
    except VerifyError as err:
        print(f"verify failed: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as err:  # unreadable arrays, a broken selection.json
        print(f"verify failed: {args.release}: {type(err).__name__}: {err}".splitlines()[0],
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
