"""Tests for coreset.data.corruptions (and the shared sampling helper)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from coreset.data import corruptions
from coreset.data.sampling import choose, count

NAMES = sorted(corruptions.CORRUPTIONS)
RANDOM = ["fog", "gaussian_noise", "occlusion"]  # the others are deterministic by design
SHAPES = [(6, 8, 8, 1), (6, 32, 32, 3)]


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    # Mid-range values: every corruption (even a black box) visibly changes them.
    return np.random.default_rng(seed).integers(40, 216, shape, dtype=np.uint8)


def _round_half_up(x: float) -> int:
    return int(Decimal(repr(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_valid_changed_not_inplace(name: str, shape: tuple[int, ...], severity: int) -> None:
    images = _images(shape)
    before = images.copy()
    out = corruptions.CORRUPTIONS[name](images, severity, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert np.array_equal(images, before), "input modified in place"
    assert out is not images
    changed = (out != images).reshape(len(images), -1).any(axis=1)
    assert changed.all(), f"{name} left some images unchanged"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_not_black(name: str, shape: tuple[int, ...]) -> None:
    grey = np.full(shape, 128, dtype=np.uint8)
    out = corruptions.CORRUPTIONS[name](grey, 5, np.random.default_rng(0))
    # The reference's fog collapsed to 0; here even the strongest fog keeps a visible image.
    assert out.mean() > 60
    assert (out.reshape(len(out), -1).mean(axis=1) > 40).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_seeded(name: str, shape: tuple[int, ...]) -> None:
    images = _images(shape)
    fn = corruptions.CORRUPTIONS[name]
    a = fn(images, 3, np.random.default_rng(7))
    b = fn(images, 3, np.random.default_rng(7))
    assert np.array_equal(a, b)
    c = fn(images, 3, np.random.default_rng(8))
    if name in RANDOM:
        assert not np.array_equal(a, c)
    else:
        assert np.array_equal(a, c)


def test_gaussian_noise_no_wraparound() -> None:
    white = np.full((4, 32, 32, 3), 255, dtype=np.uint8)
    out = corruptions.gaussian_noise(white, 5, np.random.default_rng(0))
    assert out.min() > 100, "uint8 wraparound: 255 + noise became small"
    assert out.mean() > 230
    black = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    assert corruptions.gaussian_noise(black, 5, np.random.default_rng(0)).max() < 155


def test_occlusion_random_position_and_size() -> None:
    images = np.full((40, 32, 32, 1), 200, dtype=np.uint8)
    out = corruptions.occlusion(images, 3, np.random.default_rng(0))
    boxes = set()
    for img in out[..., 0]:
        rows, cols = np.nonzero(img == 0)
        # Exactly one solid rectangle per image.
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == h * w
        boxes.add((rows.min(), cols.min(), h, w))
    assert len({b[:2] for b in boxes}) > 20, "occlusion position is not random"
    assert len({b[2:] for b in boxes}) > 10, "occlusion size is not random"


def test_resolution_and_blur_small_images_keep_structure() -> None:
    # On 8x8 images the degradation must not reduce an image to a constant.
    images = _images((4, 8, 8, 1))
    for name in ("resolution", "motion_blur"):
        out = corruptions.CORRUPTIONS[name](images, 5, np.random.default_rng(0))
        assert (out.reshape(4, -1).std(axis=1) > 1).all(), name


def test_line_kernel_45_degrees() -> None:
    k = corruptions.line_kernel(15, 45.0)
    assert k.shape == (15, 15) and np.isclose(k.sum(), 1.0)
    assert np.array_equal(k > 0, np.fliplr(np.eye(15, dtype=bool)))  # the anti-diagonal
    assert np.array_equal(corruptions.line_kernel(5, 0.0) > 0, np.eye(5, dtype=bool)[[2] * 5].T)


def test_motion_blur_uses_paper_kernel_at_32px() -> None:
    # A single bright pixel is spread along a 15-long anti-diagonal (severity 3 = paper).
    img = np.zeros((1, 32, 32, 1), dtype=np.uint8)
    img[0, 16, 16, 0] = 255
    out = corruptions.motion_blur(img, 3, np.random.default_rng(0))[0, ..., 0]
    rows, cols = np.nonzero(out)
    assert len(rows) == 15 and np.all(rows + cols == 32)


@pytest.mark.parametrize("n, rate", [(100, 0.2), (10, 0.35), (7, 0.5), (50, 0.05), (13, 1.0)])
def test_corrupt_images_counts_and_even_split(n: int, rate: float) -> None:
    images = _images((n, 8, 8, 3))
    before = images.copy()
    out, kind = corruptions.corrupt_images(images, rate, NAMES, 2, np.random.default_rng(0))
    assert np.array_equal(images, before)
    assert kind.dtype == np.dtype("<U16") and kind.shape == (n,)
    expected = _round_half_up(rate * n)
    assert (kind != "").sum() == expected
    sizes = [int((kind == name).sum()) for name in NAMES]
    assert sum(sizes) == expected and max(sizes) - min(sizes) <= 1
    # Untouched images are bit-identical; corrupted ones changed.
    assert np.array_equal(out[kind == ""], images[kind == ""])
    assert all((out[i] != images[i]).any() for i in np.flatnonzero(kind))


def test_corrupt_images_matches_single_corruption_and_is_seeded() -> None:
    images = _images((30, 8, 8, 1))
    a, kind_a = corruptions.corrupt_images(images, 0.5, "fog", 3, np.random.default_rng(3))
    b, kind_b = corruptions.corrupt_images(images, 0.5, ["fog"], 3, np.random.default_rng(3))
    assert np.array_equal(a, b) and np.array_equal(kind_a, kind_b)
    assert set(kind_a) == {"", "fog"}
    _, kind_c = corruptions.corrupt_images(images, 0.5, ["fog"], 3, np.random.default_rng(4))
    assert not np.array_equal(kind_a, kind_c)


def test_count_and_choose() -> None:
    assert count(10, 0.35) == 4  # 3.4999... in binary floats, 3.5 exactly -> rounds up
    assert count(10, 0.25) == 3 and count(10, 0.24) == 2 and count(0, 0.5) == 0
    idx = choose(100, 0.3, np.random.default_rng(0))
    assert len(idx) == 30 and len(np.unique(idx)) == 30 and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, choose(100, 0.3, np.random.default_rng(0)))
    assert not np.array_equal(idx, choose(100, 0.3, np.random.default_rng(1)))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"severity": 0}, "severity"),
        ({"severity": 6}, "severity"),
        ({"rate": 1.5}, "rate"),
        ({"types": ["snow"]}, "types"),
        ({"types": []}, "types"),
        ({"types": ["fog", "fog"]}, "types"),
        ({"images": np.zeros((2, 8, 8, 3), dtype=np.float32)}, "images"),
        ({"images": np.zeros((2, 8, 8, 2), dtype=np.uint8)}, "images"),
        ({"rng": 0}, "rng"),
    ],
)
def test_validation(kwargs: dict, word: str) -> None:
    args = {
        "images": _images((4, 8, 8, 3)),
        "rate": 0.5,
        "types": NAMES,
        "severity": 3,
        "rng": np.random.default_rng(0),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        corruptions.corrupt_images(**args)
