"""Dataset layouts on tiny trees and arrays the tests write: greyscale ImageFolder, Tiny-ImageNet's
own layout, QMNIST's files, user-supplied .npy arrays, and the process-pool decoder."""

import json

import numpy as np
import pytest
from PIL import Image

from coreset.data import datasets


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_greyscale_imagefolder_keeps_one_channel(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(2):
                _png(tmp_path / split / cls / f"{i}.png",
                     rng.integers(0, 256, (8, 8), dtype=np.uint8))
    split = datasets.load("imagefolder", tmp_path, image_size=8)
    assert split.train_images.shape == (4, 8, 8, 1)
    first = np.asarray(Image.open(tmp_path / "train" / "a" / "0.png"))
    assert np.array_equal(split.train_images[0, :, :, 0], first)  # same size: no resampling
    _png(tmp_path / "train" / "a" / "rgb.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert datasets.load("imagefolder", tmp_path, image_size=8).train_images.shape[-1] == 3


def test_pool_decoding_equals_one_process_and_writes_the_output_file(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 300), ("val", 20)):
        for cls in ("x", "y"):
            for i in range(n // 2):
                _png(tmp_path / "tree" / split / cls / f"{i:03d}.png",
                     rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    one = datasets.load("imagefolder", tmp_path / "tree", image_size=6, workers=1)
    out = tmp_path / "raw"
    datasets.materialise("imagefolder", tmp_path / "tree", out, image_size=6, workers=2)
    assert np.array_equal(np.load(out / "train_images.npy"), one.train_images)
    assert np.array_equal(np.load(out / "test_labels.npy"), one.test_labels)
    meta = json.loads((out / "meta.json").read_text())
    scaled = one.train_images.reshape(-1, 3) / 255.0
    assert meta["mean"] == pytest.approx(scaled.mean(0), abs=1e-6)
    assert meta["std"] == pytest.approx(scaled.std(0), abs=1e-6)


def _tiny_imagenet(root, wnids=("n02", "n01")):
    rng = np.random.default_rng(2)
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        for i in range(2):
            _png(root / "train" / w / "images" / f"{w}_{i}.JPEG",
                 np.full((64, 64, 3), 10 * i + (100 if w == "n02" else 0), np.uint8))
    rows = [("val_1.JPEG", "n02"), ("val_0.JPEG", "n01"), ("val_2.JPEG", "n02")]
    for name, _ in rows:
        _png(root / "val" / "images" / name, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (root / "val" / "val_annotations.txt").write_text(
        "".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in rows))


def test_tinyimagenet_layout_reads_val_annotations(tmp_path):
    _tiny_imagenet(tmp_path)
    split = datasets.load("tinyimagenet", tmp_path, image_size=16)
    assert split.classes == ["n01", "n02"]  # sorted wnids, as ImageFolder on train/ orders them
    assert split.train_labels.tolist() == [0, 0, 1, 1]
    assert split.train_images[2].mean() == 100 and split.train_images[3].mean() == 110
    assert split.test_labels.tolist() == [0, 1, 1]  # val_0 (n01), val_1 (n02), val_2 (n02)
    assert split.test_images.shape == (3, 16, 16, 3)


def test_tinyimagenet_missing_annotations_says_what(tmp_path):
    _tiny_imagenet(tmp_path)
    (tmp_path / "val" / "val_annotations.txt").unlink()
    with pytest.raises(datasets.DatasetUnavailable, match=r"val_annotations\.txt"):
        datasets.load("tinyimagenet", tmp_path)


def _idx(path, array, type_code):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = np.array([type_code * 256 + array.ndim, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(">i4" if type_code == 12 else np.uint8).tobytes())


def test_qmnist_from_local_files(tmp_path):
    rng = np.random.default_rng(3)
    raw = tmp_path / "QMNIST" / "raw"
    data = {}
    for what in ("train", "test"):
        x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
        y = np.zeros((5, 8), dtype=np.int64)
        y[:, 0] = rng.integers(0, 10, 5)
        y[:, 1] = 999  # the NIST writer id etc. must not leak into the labels
        _idx(raw / f"qmnist-{what}-images-idx3-ubyte", x, 8)
        _idx(raw / f"qmnist-{what}-labels-idx2-int", y, 12)
        data[what] = (x, y[:, 0])
    split = datasets.load("qmnist", tmp_path)
    assert split.train_images.shape == (5, 28, 28, 1)
    assert np.array_equal(split.train_images[..., 0], data["train"][0])
    assert split.train_labels.tolist() == data["train"][1].tolist()
    assert split.test_labels.tolist() == data["test"][1].tolist()


def test_qmnist_offline_error_names_folder(tmp_path):
    with pytest.raises(datasets.DatasetUnavailable) as err:
        datasets.load("qmnist", tmp_path)
    assert str(tmp_path.resolve()) in str(err.value) and "QMNIST/raw/qmnist-" in str(err.value)


def _npy(root, **override):
    rng = np.random.default_rng(4)
    arrays = {"train_images": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
              "train_labels": np.array([0, 1, 2, 3, 1, 2]),
              "test_images": rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
              "test_labels": np.array([3, 0], dtype=np.int32)}
    arrays.update(override)
    root.mkdir(exist_ok=True)
    for k, v in arrays.items():
        if v is not None:
            np.save(root / f"{k}.npy", v)
    return arrays


def test_npy_folder_round_trip(tmp_path):
    arrays = _npy(tmp_path / "mine")
    datasets.materialise("npy", tmp_path / "mine", tmp_path / "raw")
    for key in datasets.NPY_FILES:
        assert np.array_equal(np.load(tmp_path / "raw" / f"{key}.npy"), arrays[key])
    meta = json.loads((tmp_path / "raw" / "meta.json").read_text())
    assert meta["num_classes"] == 4 and meta["channels"] == 3 and meta["image_size"] == 8


@pytest.mark.parametrize(("override", "message"), [
    ({"test_labels": None}, "test_labels.npy"),
    ({"train_images": np.zeros((6, 8, 8, 3), np.float32)}, "train_images.npy: float32"),
    ({"train_images": np.zeros((6, 8, 8), np.uint8)}, r"\(N, H, W, C\)"),
    ({"train_labels": np.array([0, 1, 2])}, "train_labels.npy: int64 \\(3,\\)"),
    ({"test_images": np.zeros((2, 5, 5, 3), np.uint8)}, "differs from train_images"),
    ({"train_labels": np.array([0, 1, 2, 3, 1, -1])}, "label -1"),
    ({"train_labels": np.array([0.0, 1, 2, 3, 1, 2])}, "integer labels"),
])
def test_npy_folder_errors_name_the_file(tmp_path, override, message):
    _npy(tmp_path, **override)
    with pytest.raises(datasets.DatasetUnavailable, match=message):
        datasets.load("npy", tmp_path)


def test_new_dataset_names_are_allowed():
    assert {"tinyimagenet", "qmnist", "npy"} <= set(datasets.NAMES)


class _Counted:
    """An iterator of 0..n-1 that counts how many items were taken from it."""

    def __init__(self, n: int) -> None:
        self.n, self.taken = n, 0

    def __iter__(self):
        return self

    def __len__(self) -> int:
        return self.n

    def __next__(self) -> int:
        if self.taken == self.n:
            raise StopIteration
        self.taken += 1
        return self.taken - 1


def test_the_decode_pool_keeps_a_bounded_number_of_chunks_in_flight():
    """Pool.imap took every chunk at once and let finished ones pile up in the parent while the
    writer lagged (4 GB and growing on the ImageNet-shaped tree): at most IN_FLIGHT_PER_WORKER x
    workers chunks may be ahead of the consumer, and the results stay in order."""
    from coreset.data import image_trees

    source = _Counted(40)
    results = image_trees._pool_map(abs, source, workers=2)
    window = getattr(image_trees, "IN_FLIGHT_PER_WORKER", 4) * 2
    got = []
    for value in results:
        got.append(value)
        assert source.taken <= len(got) + window, (source.taken, len(got))
    assert got == list(range(40))


def test_the_decode_pool_raises_a_workers_error_in_order():
    from coreset.data import image_trees

    with pytest.raises(TypeError):
        list(image_trees._pool_map(abs, [1, 2, "x", 4], workers=2))
