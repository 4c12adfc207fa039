"""Generated damage to the artifacts between stages (hypothesis, fixed seed, bounded examples):
a truncated or garbage .npz/.npy/.json, a missing array or key, a pickled or truncated checkpoint
stop the reading stage with exit 2 and ONE line naming the artifact and the command that brings
it back; a checkpoint is never unpickled (weights_only)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coreset import artifacts
from coreset.io import load_json, load_npz, save_json, save_npz
from coreset.stages import _cli
from test_bad_params import DEFAULT

FAST = settings(derandomize=True, max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


class Evil:  # pickled into a checkpoint: weights_only refuses to build it
    def __reduce__(self):
        return (print, ("unpickled!",))


def checkpoint_bytes(obj: object) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def good_model_bytes() -> bytes:
    from coreset.models import create

    model = create("small_cnn", 3, 1, 8)
    return checkpoint_bytes({"name": "small_cnn", "num_classes": 3, "channels": 1,
                             "image_size": 8, "state_dict": model.state_dict()})


# artifact -> (how to write a good one, how a stage reads it, the stage that restores it)
ARTIFACTS = {
    "data/scores/el2n.npz": (lambda p: save_npz(p, score=np.arange(6.0)),
                             lambda p: load_npz(p)["score"], "score@el2n"),
    "data/selected/el2n.npz": (lambda p: save_npz(p, indices=np.arange(3), weights=np.ones(3)),
                               lambda p: load_npz(p)["indices"], "select@el2n"),
    "data/embed.npz": (lambda p: save_npz(p, features=np.zeros((6, 2))),
                       lambda p: load_npz(p, mmap=True)["features"], "embed"),
    "data/dynamics.npz": (lambda p: save_npz(p, correct=np.zeros((1, 2, 6), bool)),
                          lambda p: load_npz(p, mmap=True)["correct"], "pretrain"),
    "data/train/labels.npy": (lambda p: (p.parent.mkdir(parents=True, exist_ok=True),
                                         np.save(p, np.arange(6))),
                              lambda p: artifacts.class_counts(p, 6), "corrupt"),
    "data/raw/train_labels.npy": (lambda p: (p.parent.mkdir(parents=True, exist_ok=True),
                                             np.save(p, np.arange(6))),
                                  lambda p: artifacts.class_counts(p, 6), "download"),
    "metrics/train/el2n-0.json": (lambda p: save_json(p, {"accuracy": 0.5}),
                                  lambda p: load_json(p)["accuracy"], "train@el2n-0"),
    "metrics/train/full-1.json": (lambda p: save_json(p, {"accuracy": 0.5}),
                                  lambda p: load_json(p)["accuracy"], "train_full@1"),
    "models/pretrain/seed0.pt": (lambda p: (p.parent.mkdir(parents=True, exist_ok=True),
                                            p.write_bytes(good_model_bytes())),
                                 lambda p: artifacts.load_model(p, "cpu"), "pretrain"),
}
DAMAGE = ["truncate", "garbage", "empty", "missing_entry", "pickle"]


def damage(path: Path, kind: str, cut: float) -> None:
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * cut)])
    elif kind == "garbage":
        rng = np.random.default_rng(int(cut * 1e6))
        path.write_bytes(bytes(rng.integers(0, 256, max(8, int(len(data) * cut)),
                                            dtype=np.uint8)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing_entry":
        if path.suffix == ".npz":
            save_npz(path, other=np.zeros(2))
        elif path.suffix == ".json":
            path.write_text(json.dumps({"other": 1}))
        elif path.suffix == ".pt":
            path.write_bytes(checkpoint_bytes({"state_dict": {}}))
        else:
            np.save(path, np.zeros((2, 2)), allow_pickle=False)  # not labels
    elif kind == "pickle":
        if path.suffix == ".pt":
            path.write_bytes(checkpoint_bytes({"name": Evil()}))
        else:
            import pickle

            path.write_bytes(pickle.dumps({"score": [1, 2, 3]}))


@FAST
@given(st.sampled_from(sorted(ARTIFACTS)), st.sampled_from(DAMAGE), st.floats(0.05, 0.95))
def test_a_damaged_artifact_is_one_line_with_its_restore_command(tmp_path_factory, monkeypatch,
                                                                 capsys, name, kind, cut):
    work = tmp_path_factory.mktemp("w")
    (work / "params.yaml").write_text(yaml.safe_dump(DEFAULT))
    monkeypatch.chdir(work)
    write, read, stage = ARTIFACTS[name]
    write(Path(name))
    damage(Path(name), kind, cut)
    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(SystemExit) as stop:
        _cli.run(lambda p, argv: read(Path(name)), _cli.no_args())
    assert stop.value.code == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith(f"error: {name}: "), lines[0]
    assert f"dvc repro --force {stage}" in lines[0] and f"dvc checkout {name}" in lines[0]
    assert "weights_only=False" not in lines[0] and "unpickled!" not in out.out


def test_the_good_artifacts_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, (write, read, _) in ARTIFACTS.items():
        write(Path(name))
        read(Path(name))
