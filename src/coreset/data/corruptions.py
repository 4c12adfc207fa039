"""Image corruptions for the `corrupt` stage (training split only).

The Moderate coreset paper (Xia et al., ICLR 2023, Sec. 5.1 and App. C) injects five "realistic
noises" into a fraction of the training images, split evenly: Gaussian noise, random occlusion,
resolution (downsample x4, upsample back), fog and motion blur (line kernel of size 15 at 45 deg).
The paper gives no other parameters; where it is silent we follow the CIFAR-10-C definitions of
Hendrycks & Dietterich (ICLR 2019), "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", with severities 1..5. Severity 3 reproduces the paper's resolution factor 4 and
motion-blur kernel 15.

Bugs of the reference code that are deliberately NOT reproduced: fog cast floats straight to
uint8 (black images); Gaussian noise was added in uint8 and wrapped around; the occlusion box had a
fixed position and size; nothing was seeded. Here every result is computed in float, rounded,
clipped to [0, 255] and only then cast, and all randomness comes from the `rng` argument.

All functions take uint8 images of shape (N, H, W, C), C in {1, 3}, never modify their input and
return a new uint8 array of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as nnf
import torchvision.transforms.v2.functional as tvf

from coreset.data import names
from coreset.data.sampling import choose

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# Per-severity parameters (index = severity - 1).
# Gaussian noise std in [0, 1] intensity units: CIFAR-10-C.
NOISE_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
# Occlusion area as a fraction of the image, (min, max); severity 5 is RandomErasing's default
# range (Zhong et al. 2020), lower severities shrink it.
OCCLUSION_AREA = ((0.02, 0.08), (0.04, 0.12), (0.06, 0.18), (0.10, 0.25), (0.15, 0.33))
OCCLUSION_LOG_RATIO = (np.log(0.3), np.log(1 / 0.3))
# Down-sampling factor; 4 (severity 3) is the paper's.
RESOLUTION_FACTOR = (2, 3, 4, 6, 8)
# Fog (strength, wibble decay of the plasma fractal): CIFAR-10-C.
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))
# Motion-blur kernel size; 15 (severity 3) is the paper's. Capped for small images, see below.
BLUR_KERNEL = (7, 11, 15, 19, 23)
BLUR_ANGLE_DEG = 45.0

# Images per chunk in corrupt_images: bounds the float working memory (~16 MiB of pixels per
# chunk, fog's fractal maps included) for Tiny-ImageNet-sized inputs.
_CHUNK_PIXELS = 1 << 22


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive i.i.d. Gaussian noise (Hendrycks & Dietterich 2019), clipped, never wrapped.

    The noise is drawn from `rng` rather than torchvision's `gaussian_noise`, which uses torch's
    global generator and so could not be seeded per call.
    """
    _check(images, severity, rng)
    sigma = NOISE_SIGMA[severity - 1] * 255.0
    noise = rng.standard_normal(images.shape, dtype=np.float32) * np.float32(sigma)
    return _to_uint8(images.astype(np.float32) + noise)


def occlusion(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random occlusion: one black box per image, random size, aspect ratio and position.

    RandomErasing-style sampling (Zhong et al. 2020): area fraction uniform in the severity's range,
    log-uniform aspect ratio in [0.3, 3.3]. The reference code used a fixed box; the paper says
    random, and a fixed box would be trivially learnable.
    """
    _check(images, severity, rng)
    n, h, w, _ = images.shape
    lo, hi = OCCLUSION_AREA[severity - 1]
    area = rng.uniform(lo, hi, n) * h * w
    ratio = np.exp(rng.uniform(*OCCLUSION_LOG_RATIO, n))
    box_h = np.clip(np.rint(np.sqrt(area * ratio)), 1, h).astype(np.int64)
    box_w = np.clip(np.rint(np.sqrt(area / ratio)), 1, w).astype(np.int64)
    # Integer positions uniform over all placements that keep the box inside the image.
    top = (rng.random(n) * (h - box_h + 1)).astype(np.int64)
    left = (rng.random(n) * (w - box_w + 1)).astype(np.int64)
    rows, cols = np.arange(h), np.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :]
    out = images.copy()
    out[mask] = 0
    return out


def resolution(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Low resolution: bilinear (antialiased) downsample by a factor, then upsample back.

    Factor 4 (severity 3) as in the paper; at least 2 px per side remain so that 8x8 images are
    degraded rather than reduced to a constant. Deterministic: `rng` is accepted for the common
    signature but not used.
    """
    _check(images, severity, rng)
    if images.shape[0] == 0:
        return images.copy()
    _, h, w, _ = images.shape
    factor = RESOLUTION_FACTOR[severity - 1]
    small = [max(2, h // factor), max(2, w // factor)]
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    # uint8 in, uint8 out: torchvision rounds and saturates, so nothing can wrap.
    x = tvf.resize(x, small, antialias=True)
    x = tvf.resize(x, [h, w], antialias=True)
    return x.permute(0, 2, 3, 1).numpy().copy()


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog: plasma-fractal haze added, then contrast rescaled (Hendrycks & Dietterich 2019).

    out = clip((x + s * fractal) * max(x) / (max(x) + s), 0, 1) in [0, 1] units, computed in
    float and rounded only at the end: the reference's float->uint8 cast gave black images.
    """
    _check(images, severity, rng)
    if images.shape[0] == 0:
        return images.copy()
    n, h, w, _ = images.shape
    strength, decay = FOG[severity - 1]
    mapsize = 1 << (max(h, w) - 1).bit_length()  # diamond-square needs a power of two
    haze = _plasma_fractal(n, mapsize, decay, rng)[:, :h, :w, None]
    x = images.astype(np.float32) / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    x = (x + strength * haze) * peak / (peak + strength)
    return _to_uint8(x * 255.0)


def motion_blur(
    images: np.ndarray,
    severity: int,
    rng: np.random.Generator,
    angle: float = BLUR_ANGLE_DEG,
) -> np.ndarray:
    """Linear motion blur: a centred line kernel at `angle` degrees (paper: size 15, 45 deg).

    The kernel size is capped at the largest odd number <= max(3, min(H, W) // 2) so that small
    images are blurred, not smeared into a constant (15 at 32 px, 3 at 8 px); high severities
    therefore coincide on small images. Depthwise convolution with replicated borders (zero padding
    would darken the edges). Deterministic: `rng` is accepted for the common signature only.
    """
    _check(images, severity, rng)
    if images.shape[0] == 0:
        return images.copy()
    _, h, w, c = images.shape
    size = min(BLUR_KERNEL[severity - 1], _largest_odd(max(3, min(h, w) // 2)))
    kernel = torch.from_numpy(line_kernel(size, angle))
    weight = kernel.expand(c, 1, size, size)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32))
    pad = size // 2
    x = nnf.pad(x, (pad, pad, pad, pad), mode="replicate")
    y = nnf.conv2d(x, weight, groups=c)
    return _to_uint8(y.permute(0, 2, 3, 1).numpy())


def line_kernel(size: int, angle: float) -> np.ndarray:
    """Normalised size x size kernel: a line through the centre at `angle` degrees (0 = horizontal,
    counter-clockwise) that reaches the kernel border, e.g. the anti-diagonal at 45 deg."""
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer, got {size!r}")
    theta = np.deg2rad(angle)
    dx, dy = np.cos(theta), -np.sin(theta)  # image rows grow downwards
    half = size // 2
    # One pixel per step along the dominant axis (Bresenham-like): no gaps, no double pixels.
    t = np.arange(-half, half + 1) / max(abs(dx), abs(dy))
    rows = np.clip(np.rint(half + t * dy), 0, size - 1).astype(np.int64)
    cols = np.clip(np.rint(half + t * dx), 0, size - 1).astype(np.int64)
    kernel = np.zeros((size, size), dtype=np.float32)
    kernel[rows, cols] = 1.0
    return kernel / kernel.sum()


CORRUPTIONS = names.CORRUPTIONS  # name -> one of the functions above (the catalog)


def corrupt_images(
    images: np.ndarray,
    rate: float,
    types: Sequence[str],
    severity: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt exactly round-half-up(rate * N) random images, split evenly among `types`.

    Returns (a corrupted copy of `images`, `kind`), `kind` being a '<U16' array holding '' for
    untouched images and the corruption name otherwise. The chosen images are shuffled and cut
    into len(types) groups whose sizes differ by at most one (earlier types get the extra image),
    as the paper splits its five noises evenly. The input is never modified. Memory: the copy
    plus one chunk's working set (see :func:`corrupt_into`, which does the work in place of a
    destination without a copy of the whole set).
    """
    if isinstance(types, str):
        types = [types]
    _check_types(list(types))
    _check(images, severity, rng)
    out = images.copy()
    kind = corrupt_into(images, out, np.arange(images.shape[0]), rate, types, severity, rng)
    return out, kind


class Rows(Protocol):
    """What :func:`corrupt_into` reads from and writes to: an (N, H, W, C) uint8 array, or any
    object with its ``shape`` that reads ``x[rows]`` (a uint8 array of those rows, in that order)
    and/or writes ``x[rows] = values`` for a sorted int64 index array ``rows``."""

    shape: tuple[int, ...]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...

    def __setitem__(self, rows: np.ndarray, values: np.ndarray) -> None: ...


def corrupt_into(
    src: Rows,
    dst: Rows,
    rows: np.ndarray,
    rate: float,
    types: Sequence[str],
    severity: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """:func:`corrupt_images` restricted to the samples ``rows`` of ``src``, read and written
    chunk by chunk: the chosen rows are read from ``src`` and their corrupted versions written to
    the same rows of ``dst``; no other row of ``dst`` is touched (copy the clean rows yourself).

    Returns ``kind`` for ``rows`` (len(rows), '<U16', '' where untouched). With ``src`` an array,
    ``rows = arange(N)`` and ``dst`` a copy of ``src``, the result is exactly corrupt_images' (same
    rng draws in the same order, same chunks). Time O(len(rows) * H * W * C); memory: ``kind``,
    the index arrays (O(len(rows))) and one chunk of images with its float working copies
    (_CHUNK_PIXELS pixels, ~16 MiB of pixels), independent of N.
    """
    if isinstance(types, str):
        types = [types]
    types = list(types)
    _check_types(types)
    rows = np.asarray(rows, dtype=np.int64)
    _check(np.asarray(src[rows[:0]]), severity, rng)
    kind = np.full(len(rows), "", dtype="<U16")
    chosen = rng.permutation(choose(len(rows), rate, rng))
    step = _chunk_len(tuple(src.shape))
    for name, group in zip(types, np.array_split(chosen, len(types)), strict=True):
        group = np.sort(group)
        for start in range(0, len(group), step):
            part = rows[group[start : start + step]]
            dst[part] = CORRUPTIONS[name](np.asarray(src[part]), severity, rng)
        kind[group] = name
    return kind


def _plasma_fractal(n: int, mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """n diamond-square height maps in [0, 1], shape (n, mapsize, mapsize).

    Hendrycks & Dietterich's `plasma_fractal`, vectorised over a leading batch axis and seeded.
    """
    maps = np.zeros((n, mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0

    def displaced_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        # Squares: each centre is the mean of its four corners plus a random displacement.
        corners = maps[:, ::step, ::step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half::step, half::step] = displaced_mean(square)
        # Diamonds: edge midpoints from the two adjacent centres and the two adjacent corners.
        centres = maps[:, half::step, half::step]
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, ::step, half::step] = displaced_mean(top)
        left = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half::step, ::step] = displaced_mean(left)
        step, wibble = half, wibble / decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round, clip to [0, 255], then cast: a bare astype(uint8) would wrap around."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _largest_odd(k: int) -> int:
    return k if k % 2 else k - 1


def _chunk_len(shape: tuple[int, ...]) -> int:
    _, h, w, c = shape
    mapsize = 1 << (max(h, w) - 1).bit_length()
    return max(1, _CHUNK_PIXELS // max(h * w * c, mapsize * mapsize))


def _check(images: np.ndarray, severity: int, rng: np.random.Generator) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {np.shape(images)}"
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, C), got {got}")
    _, h, w, c = images.shape
    if c not in (1, 3) or h < 2 or w < 2:
        raise ValueError(
            f"images must have C in {{1, 3}} channels and H, W >= 2, got shape {images.shape}"
        )
    if isinstance(severity, bool) or not isinstance(severity, Integral) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def _check_types(types: list[str]) -> None:
    if not types:
        raise ValueError(f"types must name at least one of {sorted(CORRUPTIONS)}, got []")
    unknown = [t for t in types if t not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"types contains unknown {unknown}; allowed: {sorted(CORRUPTIONS)}")
    if len(set(types)) != len(types):
        raise ValueError(f"types must not repeat a corruption, got {types}")
