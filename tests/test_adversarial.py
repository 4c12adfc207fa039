"""Tests for coreset.data.adversarial: PGD / FGSM on a tiny model trained on sklearn's digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from sklearn.datasets import load_digits
from torch import nn

from coreset.data.adversarial import attack

EPS = 8 / 255


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """MLP with BatchNorm (to check eval mode) trained ~1 s on 8x8 digits; 300 held-out images."""
    data = load_digits()
    images = np.rint(data.images * 255 / 16).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = data.target.astype(np.int64)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)
    )
    x = _normalize(torch.from_numpy(images[:1400].transpose(0, 3, 1, 2) / 255.0).float())
    y = torch.from_numpy(labels[:1400])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        nnf.cross_entropy(model(x), y).backward()
        opt.step()
    return model, images[1400:1700], labels[1400:1700]


def _loss(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        x = _normalize(torch.from_numpy(images.transpose(0, 3, 1, 2) / 255.0).float())
        return nnf.cross_entropy(model(x), torch.from_numpy(labels)).item()


def _attack(model: nn.Module, images: np.ndarray, labels: np.ndarray, **kw) -> np.ndarray:
    kw = {"normalize": _normalize, "batch_size": 64, "disable_progress": True, **kw}
    return attack(model, images, labels, **kw)


@pytest.mark.parametrize("method", ["pgd", "fgsm"])
@pytest.mark.parametrize("eps", [EPS, 0.01])
def test_eps_ball_and_range(digits, method: str, eps: float) -> None:
    model, images, labels = digits
    adv = _attack(model, images, labels, method=method, eps=eps, alpha=eps / 4)
    assert adv.dtype == np.uint8 and adv.shape == images.shape
    diff = np.abs(adv.astype(int) - images.astype(int))
    assert diff.max() <= math.ceil(eps * 255)
    # Inside the ball even after uint8 rounding (0.01 * 255 = 2.55 -> at most 2 levels) ...
    assert diff.max() / 255 <= eps + 1e-12
    # ... and the budget is used, not lost to rounding.
    assert diff.max() == math.floor(eps * 255 + 1e-6)
    assert (diff > 0).mean() > 0.3


def test_normalize_applied_to_unit_range(digits) -> None:
    model, images, labels = digits
    seen: list[tuple[float, float]] = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.min().item(), x.max().item()))
        return _normalize(x)

    _attack(model, images[:10], labels[:10], method="pgd", steps=3, normalize=spy)
    assert len(seen) == 3  # one forward per PGD step, on [0, 1] images
    assert all(lo >= 0.0 and hi <= 1.0 for lo, hi in seen)


def test_attacks_raise_loss(digits) -> None:
    model, images, labels = digits
    clean = _loss(model, images, labels)
    fgsm = _loss(model, _attack(model, images, labels, method="fgsm"), labels)
    pgd = _loss(model, _attack(model, images, labels, method="pgd"), labels)
    assert clean < 0.5, f"tiny model did not train: clean loss {clean:.3f}"
    assert fgsm > clean * 1.5, (clean, fgsm)
    assert pgd > clean * 1.5, (clean, pgd)
    assert pgd >= 0.95 * fgsm, (fgsm, pgd)  # the iterated attack is at least as strong


def test_eps_zero_is_identity(digits) -> None:
    model, images, labels = digits
    for method in ("pgd", "fgsm"):
        adv = _attack(model, images[:20], labels[:20], method=method, eps=0.0)
        assert np.array_equal(adv, images[:20])


def test_seeded_and_deterministic(digits) -> None:
    model, images, labels = digits
    images, labels = images[:64], labels[:64]
    a = _attack(model, images, labels, method="pgd", seed=1)
    assert np.array_equal(a, _attack(model, images, labels, method="pgd", seed=1))
    assert not np.array_equal(a, _attack(model, images, labels, method="pgd", seed=2))
    f = _attack(model, images, labels, method="fgsm")
    assert np.array_equal(f, _attack(model, images, labels, method="fgsm", batch_size=7))


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_batchnorm_untouched(digits, training: bool) -> None:
    model, images, labels = digits
    model.train(training)
    bn = model[2]
    stats = bn.running_mean.clone(), bn.running_var.clone()
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    _attack(model, images[:32], labels[:32], method="pgd", steps=2)
    assert model.training is training
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    # Only input gradients are taken: the parameters' .grad is left as it was.
    for p, g in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


def test_three_channels_and_odd_batches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 10 * 10, 5))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 12, 12, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, 10)
    adv = attack(model, images, labels, eps=4 / 255, batch_size=3, disable_progress=True)
    assert adv.shape == images.shape
    assert np.abs(adv.astype(int) - images.astype(int)).max() <= 4


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"method": "cw"}, "method"),
        ({"eps": -0.1}, "eps"),
        ({"alpha": 0.0}, "alpha"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"labels": np.zeros(3, dtype=np.int64)}, "labels"),
        ({"images": np.zeros((4, 8, 8, 1), dtype=np.float32)}, "images"),
    ],
)
def test_validation(kwargs: dict, word: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    args = {"images": np.zeros((4, 8, 8, 1), dtype=np.uint8), "labels": np.zeros(4, dtype=int)}
    args.update(kwargs)
    images, labels = args.pop("images"), args.pop("labels")
    with pytest.raises(ValueError, match=word):
        attack(model, images, labels, **args)
