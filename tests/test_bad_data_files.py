"""Generated bad data files (hypothesis, fixed seed, bounded examples): a damaged or hostile
.npy dataset or ImageFolder tree stops the download stage with exit 2 and ONE line naming the
file to fix, and data/raw is not written."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from coreset.stages import _cli, download
from test_bad_params import edited

FAST = settings(derandomize=True, max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_download(work: Path, monkeypatch, capsys, dataset: str, root: Path) -> str:
    """The download stage in-process on ``root``: exit 2, one line, data/raw not written."""
    (work / "params.yaml").write_text(yaml.safe_dump(edited({"data.dataset": dataset,
                                                             "data.root": str(root)})))
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["download"])
    with pytest.raises(SystemExit) as stop:
        _cli.run(download.main, download.outputs)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not (work / "data").exists()
    return lines[0]


# --- .npy datasets -------------------------------------------------------------------------------

def good_arrays(rng: np.random.Generator, n: int = 40, size: int = 8) -> dict[str, np.ndarray]:
    labels = np.arange(n) % 4
    return {"train_images": rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
            "train_labels": labels.astype(np.int64),
            "test_images": rng.integers(0, 256, (n // 2, size, size, 1), dtype=np.uint8),
            "test_labels": labels[: n // 2].astype(np.int64)}


def save_all(root: Path, arrays: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        if isinstance(value, bytes):
            (root / f"{key}.npy").write_bytes(value)
        else:
            np.save(root / f"{key}.npy", value, allow_pickle=True)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


KEYS = ["train_images", "train_labels", "test_images", "test_labels"]


@st.composite
def damaged(draw) -> tuple[str, str]:
    """(which file, which damage)."""
    damage = draw(st.sampled_from(["object", "pickle", "truncate", "garbage", "empty_file",
                                   "huge_label", "negative_label", "empty_test", "tiny_images",
                                   "unknown_test_label", "float_images"]))
    if damage in ("huge_label", "negative_label"):
        key = draw(st.sampled_from(["train_labels", "test_labels"]))
    elif damage in ("empty_test", "unknown_test_label"):
        key = {"empty_test": "test_images", "unknown_test_label": "test_labels"}[damage]
    elif damage == "tiny_images":
        key = "train_images"
    elif damage == "float_images":
        key = draw(st.sampled_from(["train_images", "test_images"]))
    else:
        key = draw(st.sampled_from(KEYS))
    return key, damage


def apply(arrays: dict, key: str, damage: str, cut: float) -> dict:
    out: dict[str, object] = dict(arrays)
    a = arrays[key]
    if damage == "object":
        out[key] = np.array([object()] * len(a), dtype=object)
    elif damage == "pickle":
        out[key] = pickle.dumps(a.tolist())
    elif damage == "truncate":
        data = npy_bytes(a)
        out[key] = data[: max(1, int(len(data) * cut))]
    elif damage == "garbage":
        out[key] = bytes(np.random.default_rng(int(cut * 1000)).integers(0, 256, 200,
                                                                          dtype=np.uint8))
    elif damage == "empty_file":
        out[key] = b""
    elif damage == "huge_label":
        out[key] = a.copy()
        out[key][-1] = 10**9
    elif damage == "negative_label":
        out[key] = a.copy()
        out[key][0] = -1
    elif damage == "empty_test":
        out["test_images"], out["test_labels"] = a[:0], arrays["test_labels"][:0]
    elif damage == "tiny_images":
        out["train_images"] = a[:, :1, :1]
        out["test_images"] = arrays["test_images"][:, :1, :1]
    elif damage == "unknown_test_label":
        out[key] = a.copy()
        out[key][0] = 7  # the training labels are 0..3
    elif damage == "float_images":
        out[key] = a.astype(np.float32)
    return out


@FAST
@given(damaged(), st.floats(0.05, 0.95))
def test_a_damaged_npy_dataset_is_one_line_naming_the_file(tmp_path_factory, monkeypatch,
                                                           capsys, which, cut):
    key, damage = which
    work = tmp_path_factory.mktemp("w")
    root = work / "mine"
    save_all(root, apply(good_arrays(np.random.default_rng(0)), key, damage, cut))
    line = run_download(work, monkeypatch, capsys, "npy", root)
    assert f"{root.resolve() / key}.npy: " in line, (damage, line)
    assert "not allowed" in line


def test_the_good_npy_dataset_passes(tmp_path, monkeypatch):
    root = tmp_path / "mine"
    save_all(root, good_arrays(np.random.default_rng(0)))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited({"data.dataset": "npy",
                                                                 "data.root": str(root)})))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["download"])
    _cli.run(download.main, download.outputs)
    assert np.array_equal(np.load(tmp_path / "data/raw/train_labels.npy"), np.arange(40) % 4)


# --- ImageFolder trees ---------------------------------------------------------------------------

def png(size: tuple[int, int] = (10, 10), value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels (a few hundred bytes on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def tree(root: Path, per_class: int = 2) -> None:
    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}.png").write_bytes(png(value=40 * c + i + (split == "test")))


TREE_DAMAGE = ["truncated", "bomb", "tiny", "loop", "folder_link_other_class", "file_link_out",
               "file_link_other_class", "hard_link_two_classes", "class_link", "garbage"]


@FAST
@given(st.sampled_from(TREE_DAMAGE), st.sampled_from(["train", "test"]), st.floats(0.3, 0.9))
def test_a_damaged_image_tree_is_one_line_naming_the_file(tmp_path_factory, monkeypatch, capsys,
                                                          damage, split, cut):
    work = tmp_path_factory.mktemp("w")
    root = work / "images"
    tree(root)
    cat = root / split / "cat"
    bad = cat / "bad.png"
    if damage == "truncated":
        data = Image.new("L", (64, 64)).tobytes()
        buf = io.BytesIO()
        Image.frombytes("L", (64, 64), bytes(np.random.default_rng(1).integers(
            0, 256, len(data), dtype=np.uint8))).save(buf, format="PNG")
        bad.write_bytes(buf.getvalue()[: int(len(buf.getvalue()) * cut)])
    elif damage == "bomb":
        bad.write_bytes(bomb_png(20_000, 20_000))
    elif damage == "tiny":
        bad.write_bytes(png((1, 1)))
    elif damage == "garbage":
        bad.write_bytes(b"not a png at all" * 4)
    elif damage == "loop":
        bad = cat / "again"
        os.symlink("..", bad)
    elif damage == "folder_link_other_class":
        bad = cat / "more"
        os.symlink(root / split / "dog", bad)
    elif damage == "file_link_out":
        (work / "outside.png").write_bytes(png())
        os.symlink(work / "outside.png", bad)
    elif damage == "file_link_other_class":
        os.symlink(root / split / "dog" / "0.png", bad)
    elif damage == "hard_link_two_classes":
        os.link(root / split / "dog" / "0.png", bad)
    elif damage == "class_link":  # a third class that is another class under a new name
        bad = root / split / "cow"
        os.symlink(root / split / "cat", bad)
        os.symlink(root / ("test" if split == "train" else "train") / "cat",
                   root / ("test" if split == "train" else "train") / "cow")
    line = run_download(work, monkeypatch, capsys, "imagefolder", root)
    named = str(bad) in line or (damage == "class_link" and "/cow/" in line)
    assert named and "Traceback" not in line, (damage, line)


def test_the_good_tree_passes_with_torchvisions_order(tmp_path, monkeypatch):
    from torchvision.datasets import ImageFolder

    from coreset.data.image_trees import imagefolder_files

    tree(tmp_path / "images", per_class=3)
    train, test, classes = imagefolder_files(tmp_path / "images")
    reference = ImageFolder(str(tmp_path / "images" / "train"))
    assert train == reference.samples and classes == reference.classes
    assert len(test) == 6
