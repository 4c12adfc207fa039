"""Datasets (digits, ImageFolder, offline torchvision), models and the training loop."""

import numpy as np
import pytest
import torch
from PIL import Image

from coreset.config import TrainParams
from coreset.data import datasets
from coreset.models import create
from coreset.progress import EpochProgress
from coreset.training import (
    Normalizer,
    augment_batch,
    draw_augment,
    fit,
    make_optimizer,
    predict,
)

TP = TrainParams(model="small_cnn", epochs=3, batch_size=32, lr=0.05, momentum=0.9,
                 weight_decay=5e-4, nesterov=True, schedule="cosine", milestones=(2,), gamma=0.1,
                 step_size=1, augment="none", report="final")


def test_digits_split_is_stratified_and_fixed():
    a = datasets.load("digits", "unused", test_fraction=0.2, split_seed=0)
    b = datasets.load("digits", "unused", test_fraction=0.2, split_seed=0)
    assert a.train_images.shape == (1437, 8, 8, 1) and a.train_images.dtype == np.uint8
    assert len(a.test_labels) == 360 and a.train_images.max() == 255
    assert np.array_equal(a.train_labels, b.train_labels)
    frac = np.bincount(a.test_labels) / np.bincount(np.r_[a.train_labels, a.test_labels])
    assert np.all(np.abs(frac - 0.2) < 0.02)


def test_imagefolder_tree(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i}.png")
    split = datasets.load("imagefolder", tmp_path, image_size=16)
    assert split.train_images.shape == (6, 16, 16, 3)
    assert split.test_images.shape == (4, 16, 16, 3)
    assert split.classes == ["cat", "dog"]
    assert split.train_labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_imagefolder_missing_says_where(tmp_path):
    with pytest.raises(datasets.DatasetUnavailable, match=r"train/<class>/<image>"):
        datasets.load("imagefolder", tmp_path / "nothing")


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_torchvision_offline_error_names_folder(tmp_path, name):
    with pytest.raises(datasets.DatasetUnavailable) as err:
        datasets.load(name, tmp_path)
    assert str(tmp_path.resolve()) in str(err.value) and "data.root" in str(err.value)


def test_torchvision_arrays_from_local_files(tmp_path, monkeypatch):
    """CIFAR-10 from files on disk (a tiny fake of the python pickle format)."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def batch(n):
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "labels": rng.integers(0, 10, n).tolist()}

    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    saved = {}
    for name in names:
        saved[name] = batch(4)
        with open(folder / name, "wb") as f:
            pickle.dump(saved[name], f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    import torchvision.datasets.cifar as cifar

    # torchvision checks md5 sums of the real files; our fake files have other sums
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    split = datasets.load("cifar10", tmp_path)
    assert split.train_images.shape == (20, 32, 32, 3)
    first = saved["data_batch_1"]["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(split.train_images[0], first)
    assert split.test_labels.tolist() == saved["test_batch"]["labels"]


@pytest.mark.parametrize(("name", "size", "channels"),
                         [("small_cnn", 8, 1), ("mnist_cnn", 8, 1), ("mnist_cnn", 28, 1),
                          ("resnet18", 32, 3), ("resnet18", 64, 1)])
def test_models_expose_features_and_classifier(name, size, channels):
    model = create(name, 7, channels, size).eval()
    x = torch.randn(2, channels, size, size)
    h = model.features(x)
    assert torch.allclose(model.classifier(h), model(x))
    assert model(x).shape == (2, 7)


def test_augment_crop_flip_matches_naive_loop():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    shifts, flips = draw_augment(2, "crop_flip", torch.Generator().manual_seed(0), pad=2)
    out = augment_batch(x, shifts, flips, pad=2)
    gen = torch.Generator().manual_seed(0)
    shifts = torch.randint(0, 5, (2, 2), generator=gen)
    flip = torch.rand(2, generator=gen) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        r, c = int(shifts[0, b]), int(shifts[1, b])
        crop = padded[b, :, r : r + 5, c : c + 5]
        assert torch.equal(out[b], crop.flip(2) if flip[b] else crop)


def test_multistep_schedule_values():
    p = TrainParams(**{**TP.__dict__, "schedule": "multistep", "milestones": (1, 2), "gamma": 0.5,
                       "epochs": 3})
    opt, sched = make_optimizer(torch.nn.Linear(2, 2), p, steps_per_epoch=2)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])


def _tiny_fit(seed, weights=None):
    split = datasets.load("digits", "unused")
    x, y = torch.from_numpy(split.train_images[:200]), torch.from_numpy(split.train_labels[:200])
    torch.manual_seed(seed)
    model = create("small_cnn", 10, 1, 8)
    norm = Normalizer([0.3], [0.4], torch.device("cpu"))
    test = (torch.from_numpy(split.test_images), torch.from_numpy(split.test_labels))
    res = fit(model, x, y, TP, norm, seed=seed, weights=weights, test=test, record_dynamics=True)
    return model, res


def test_training_is_bitwise_deterministic_and_learns():
    m1, r1 = _tiny_fit(0)
    m2, r2 = _tiny_fit(0)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert r1.history == r2.history
    assert np.array_equal(r1.correct, r2.correct) and np.array_equal(r1.loss, r2.loss)
    assert r1.history[-1]["test_acc"] > 0.3  # 200 digits, 3 epochs: far above chance (0.1)
    _, r3 = _tiny_fit(1)
    assert r3.history != r1.history


def test_uniform_weights_equal_unweighted_training():
    m1, _ = _tiny_fit(0)
    m2, _ = _tiny_fit(0, weights=torch.full((200,), 3.0))
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_predict_is_float32_inside_an_autocast_region():
    """Features and logits (what every selector reads) stay float32 even when the caller runs
    under bfloat16 autocast (the old predict only switched autocast on for CUDA and never off)."""
    split = datasets.load("digits", "unused")
    torch.manual_seed(0)
    model = create("small_cnn", 10, 1, 8)
    norm = Normalizer([0.3], [0.4], torch.device("cpu"))
    x = torch.from_numpy(split.train_images[:64])
    logits, feats = predict(model, x, norm, features=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast_logits, fast_feats = predict(model, x, norm, features=True)
    assert fast_feats.dtype == torch.float32
    assert torch.equal(fast_logits, logits) and torch.equal(fast_feats, feats)


def test_fit_output_is_one_short_line_per_epoch_in_a_log():
    import io

    log = io.StringIO()  # not a terminal: no tqdm bar, one line per epoch
    progress = EpochProgress(30, "train el2n seed 0", stream=log)
    for epoch in (1, 2):
        progress.update({"epoch": epoch, "train_loss": 0.5, "train_acc": 0.8, "lr": 0.05,
                         "test_acc": 0.75})
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[1].startswith("train el2n seed 0: epoch 2/30 loss 0.5000 acc 0.8000 test 0.7500 "
                               "lr 0.05 ")
    assert all(len(line) < 100 for line in lines)


def test_auto_model_is_the_plain_mnist_cnn_for_small_greyscale_images():
    from coreset.models import resolve

    assert resolve("auto", 1, 28) == "mnist_cnn" and resolve("auto", 1, 8) == "mnist_cnn"
    assert resolve("auto", 3, 32) == "resnet18" and resolve("auto", 1, 64) == "resnet18"
    assert resolve("small_cnn", 1, 28) == "small_cnn"
    model = create("mnist_cnn", 10, 1, 28)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 2 and len(linears) == 2  # the slides' 2 conv + 2 fc network
    assert linears[0].in_features == 64 * 12 * 12  # 28 -> 26 -> 24 -> pool 12
