"""`coreset verify` on releases built here from known scores: a true release passes; altered
scores, indices, weights, CSV or a missing checksum each fail with exit 1 and one line."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from coreset.config import parse
from coreset.experiments import export, verify
from coreset.scores.inputs import selection_rng
from coreset.scores.selection import select

ROOT = Path(__file__).resolve().parents[1]
N, CLASSES = 300, 5


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def release(folder: Path, recipe: str, scores: np.ndarray | None = None) -> Path:
    """A release as `coreset export` writes it, of the selection the select stage would make
    (selection independently computed here with the select stage's call)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ratio"] = 0.3
    p = parse(params)
    r = p.recipes[recipe]
    rng = np.random.default_rng(7)
    labels = rng.integers(0, CLASSES, N).astype(np.int64)
    scores = rng.normal(size=N) if scores is None else scores
    kept = select(scores, labels, p.ratio, r.window, r.balance, selection_rng(p, r.method, 1))
    weights = np.ones(len(kept), np.float32)
    copies = {"scores.npz": npz_bytes(score=scores),
              "selection.npz": npz_bytes(indices=kept, weights=weights),
              "train_labels.npy": npy_bytes(labels)}
    meta = {"recipe": recipe, "n_train": N, "kept": len(kept), "params": params,
            "code": {"commit": "0" * 40},
            "dvc_md5": {"scores": hashlib.md5(copies["scores.npz"]).hexdigest(),
                        "selected": hashlib.md5(copies["selection.npz"]).hexdigest()}}
    export.write_release(folder, kept, weights, meta, copies)
    return folder


def resum(folder: Path) -> None:
    """Recompute every checksum after an edit: what someone altering a release on purpose does,
    so that only the re-derivation can catch it."""
    meta = json.loads((folder / "selection.json").read_text())
    for name in ("scores.npz", "selection.npz"):
        key = "scores" if name == "scores.npz" else "selected"
        meta["dvc_md5"][key] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta["files"] = {n: verify.sha256(folder / n) for n in meta["files"]}
    (folder / "selection.json").write_text(json.dumps(meta))
    names = sorted(p.name for p in folder.iterdir() if p.name != verify.SUMS)
    (folder / verify.SUMS).write_text("".join(f"{verify.sha256(folder / n)}  {n}\n"
                                              for n in names))


def run(folder: Path, capsys) -> tuple[int, str]:
    code = verify.main([str(folder)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("recipe", ["el2n", "moderate"])  # balanced top, global moderate band
def test_a_true_release_verifies(tmp_path, capsys, recipe):
    code, out = run(release(tmp_path, recipe), capsys)
    assert code == 0, out
    assert "OK (7 checksums" in out and "re-derived from 300 scores" in out


def test_altered_scores_fail_by_checksum_and_by_rederivation(tmp_path, capsys):
    folder = release(tmp_path, "el2n")
    scores = np.load(folder / "scores.npz")["score"]
    with np.load(folder / "selection.npz") as z:
        kept = z["indices"]
    # the highest kept score of class-agnostic view drops to the bottom: a different top set
    scores[kept[0]] = scores.min() - 1.0
    (folder / "scores.npz").write_bytes(npz_bytes(score=scores))
    code, out = run(folder, capsys)
    assert code == 1 and "scores.npz: sha256" in out and len(out.strip().splitlines()) == 1
    resum(folder)
    code, out = run(folder, capsys)
    assert code == 1 and "not the selection its scores give" in out, out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("edit", ["indices", "weights", "csv"])
def test_altered_kept_samples_fail_even_with_fresh_checksums(tmp_path, capsys, edit):
    folder = release(tmp_path, "el2n")
    kept = np.load(folder / "kept_indices.npy")
    weights = np.load(folder / "kept_weights.npy")
    if edit == "indices":  # swap one kept sample for a dropped one, consistently everywhere
        dropped = np.setdiff1d(np.arange(N), kept)[0]
        kept = np.sort(np.concatenate([kept[1:], [dropped]]))
    elif edit == "weights":
        weights = weights.copy()
        weights[0] = 2.0
    if edit == "csv":
        lines = (folder / "kept.csv").read_text().splitlines()
        (folder / "kept.csv").write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    else:
        np.save(folder / "kept_indices.npy", kept)
        np.save(folder / "kept_weights.npy", weights)
        (folder / "selection.npz").write_bytes(npz_bytes(indices=kept, weights=weights))
        (folder / "kept.csv").write_text("index,weight\n" + "".join(
            f"{i},{w:.9g}\n" for i, w in zip(kept, weights, strict=True)))
    resum(folder)
    code, out = run(folder, capsys)
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    expected = {"indices": "not the selection its scores give", "weights": "weights",
                "csv": "kept.csv"}[edit]
    assert expected in out


def test_a_file_outside_the_checksums_or_a_missing_folder_fails(tmp_path, capsys):
    folder = release(tmp_path / "r", "el2n")
    (folder / "extra.txt").write_text("x")
    code, out = run(folder, capsys)
    assert code == 1 and "extra.txt not in SHA256SUMS" in out
    code, out = run(tmp_path / "nowhere", capsys)
    assert code == 2 and "not a folder" in out
