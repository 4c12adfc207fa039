"""Datasets (digits, ImageFolder, offline torchvision), models and the training loop."""

import numpy as np
import pytest
import torch
from PIL import Image

from coreset.data import datasets
from coreset.models import create
from coreset.params import CoresetTrainParams, TrainParams
from coreset.training.dynamic import budget
from coreset.training.loop import (
    Clock,
    Normalizer,
    _batch_loss,
    augment_batch,
    draw_augment,
    fit,
    make_optimizer,
    predict,
)
from coreset.training.options import AUGMENTS
from coreset.training.progress import EpochProgress

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


@pytest.mark.parametrize("mode", [m for m in AUGMENTS if m not in ("auto", "none")])
def test_every_augment_mode_draws_and_matches_naive_crop(mode):
    # Each mode options.AUGMENTS allows must run (``crop`` raised a TypeError once) and crop as
    # torchvision's RandomCrop(padding) does; only crop_flip may mirror.
    x = torch.arange(3 * 2 * 4 * 4, dtype=torch.float32).view(3, 2, 4, 4)
    shifts, flips = draw_augment(3, mode, torch.Generator().manual_seed(1), pad=1)
    assert shifts.shape == (2, 3) and flips.shape == (3,) and flips.dtype == torch.bool
    assert mode == "crop_flip" or not flips.any()
    out = augment_batch(x, shifts, flips, pad=1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for b in range(3):
        r, c = int(shifts[0, b]), int(shifts[1, b])
        crop = padded[b, :, r : r + 4, c : c + 4]
        assert torch.equal(out[b], crop.flip(2) if flips[b] else crop)


def test_multistep_schedule_values():
    p = TrainParams(**{**TP.__dict__, "schedule": "multistep", "milestones": (1, 2), "gamma": 0.5,
                       "epochs": 3})
    opt, sched = make_optimizer(torch.nn.Linear(2, 2), p, Clock(budget("epochs", 4, 2, 3), 3))
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


# --- the training protocol: budget, dynamic selection, recorded dynamics ------------------------

PROTOCOL = {"budget": "epochs", "steps": 0, "dynamic": "none", "dynamic_ratio": 0.1,
            "infobatch_prune": 0.5, "infobatch_anneal": 0.125}


def _protocol_fit(epochs=3, **protocol):
    """A fit under a train-section protocol; returns the model, the result and the number of
    samples of each training forward pass, grouped by epoch (via history length)."""
    p = CoresetTrainParams(**{**TP.__dict__, "epochs": epochs, **PROTOCOL, **protocol})
    split = datasets.load("digits", "unused")
    x, y = torch.from_numpy(split.train_images[:200]), torch.from_numpy(split.train_labels[:200])
    torch.manual_seed(0)
    model = create("small_cnn", 10, 1, 8)
    sizes: list[list[int]] = [[]]
    model.register_forward_pre_hook(
        lambda m, args: sizes[-1].append(len(args[0])) if m.training else None)
    res = fit(model, x, y, p, Normalizer([0.3], [0.4], torch.device("cpu")), seed=0,
              on_epoch=lambda row: sizes.append([]))
    return model, res, sizes[:-1]


def test_default_protocol_trains_bitwise_as_before():
    """budget epochs + dynamic none (the params.yaml defaults) is the plain loop: the same weights,
    bit for bit, as a TrainParams without protocol keys (pretrain's and the attacker's)."""
    m1, r1 = _tiny_fit(0)
    m2, r2, sizes = _protocol_fit()
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [{k: v for k, v in h.items() if k != "test_acc"} for h in r1.history] == r2.history
    assert sizes == [[32] * 6 + [8]] * 3


def test_steps_budget_stops_at_its_steps_and_ends_the_schedule():
    # 200 samples at batch 32: 7 steps per pass; 10 steps = one pass + 3 batches
    _, res, sizes = _protocol_fit(epochs=30, budget="steps", steps=10)
    assert sizes == [[32] * 6 + [8], [32] * 3]
    assert len(res.history) == 2 and res.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert res.history[0]["lr"] == pytest.approx(0.05 * 0.5 * (1 + np.cos(np.pi * 7 / 10)))


def test_rs2_trains_each_epoch_on_its_share():
    # ratio 0.25 of 200: 50 samples per epoch, 2 steps each; the schedule spans 3 x 2 steps
    _, res, sizes = _protocol_fit(dynamic="rs2", dynamic_ratio=0.25)
    assert sizes == [[32, 18]] * 3
    assert res.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    m1, r1, _ = _protocol_fit(dynamic="rs2", dynamic_ratio=0.25)
    m2, r2, _ = _protocol_fit(dynamic="rs2", dynamic_ratio=0.25)
    assert r1.history == r2.history  # seeded: bitwise the same run
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_infobatch_prunes_between_a_full_first_and_a_full_annealing_epoch():
    _, res, sizes = _protocol_fit(epochs=8, dynamic="infobatch")
    seen = [sum(s) for s in sizes]
    assert seen[0] == 200 and seen[-1] == 200  # first epoch full; last 1 of 8 anneals
    assert all(s < 200 for s in seen[1:-1])  # a share of the below-mean losses is dropped
    assert res.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_batch_loss_keeps_infobatch_rescaling_by_hand():
    ce = torch.tensor([1.0, 2.0, 3.0])
    assert _batch_loss(ce, None, None) == pytest.approx(2.0)
    assert _batch_loss(ce, None, torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(7 / 3)
    w = torch.tensor([1.0, 1.0, 2.0])
    assert _batch_loss(ce, w, None) == pytest.approx(9 / 4)
    # sum(w * w_dyn * ce) / sum(w): (2 + 2 + 6) / 4, not divided by sum(w_dyn) as well
    assert _batch_loss(ce, w, torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(10 / 4)


def test_recorded_dynamics_agree_with_loss_and_correctness():
    """The margins and probabilities come from the same forward pass as the recorded loss and
    correctness: prob = exp(-loss) (cross-entropy is -log p_y), and a sample is correct exactly
    when its logit margin (and its probability margin) is positive."""
    _, res = _tiny_fit(0)
    d = res.dynamics
    assert set(d) == {"margin", "prob", "prob_margin", "prob_change", "eval_prob"}
    assert all(a.shape == res.loss.shape and a.dtype == np.float32 for a in d.values())
    np.testing.assert_allclose(d["prob"], np.exp(-res.loss), rtol=1e-4, atol=1e-6)
    assert np.array_equal(d["margin"] > 0, res.correct)
    assert np.array_equal(d["prob_margin"] > 0, res.correct)
    assert d["prob_margin"].min() >= -1 and d["prob_margin"].max() <= 1
    # TDDS's change: none at the first epoch, then a real change as the model learns
    assert (d["prob_change"][0] == 0).all() and (d["prob_change"][1:] >= 0).all()
    assert d["prob_change"][1:].mean() > 0


def test_eval_prob_is_each_epochs_eval_mode_unaugmented_probability():
    """eval_prob[e] equals a brute-force per-sample pass of a snapshot of the model taken after
    epoch e: eval mode (BatchNorm's running statistics), un-augmented image, softmax of the
    assigned label. The train-mode augmented ``prob`` of the same epoch is another number (the
    view Dyn-Unc read before)."""
    import copy

    split = datasets.load("digits", "unused")
    x, y = torch.from_numpy(split.train_images[:96]), torch.from_numpy(split.train_labels[:96])
    torch.manual_seed(0)
    model = create("small_cnn", 10, 1, 8)
    norm = Normalizer([0.3], [0.4], torch.device("cpu"))
    snapshots = []
    res = fit(model, x, y, TP, norm, seed=0, augment="crop", record_dynamics=True,
              on_epoch=lambda row: snapshots.append(copy.deepcopy(model).eval()))
    got = res.dynamics["eval_prob"]
    assert got.shape == (TP.epochs, 96) and got.dtype == np.float32
    for e, snap in enumerate(snapshots):
        with torch.no_grad():
            ref = [torch.softmax(snap(norm(norm.unit(x[i : i + 1]))).double(), 1)[0, y[i]].item()
                   for i in range(96)]
        np.testing.assert_allclose(got[e], ref, rtol=1e-5, atol=1e-6)
    assert np.abs(got - res.dynamics["prob"]).max() > 0.05
