"""The `corrupt` stage streams the training split (coreset.data.perturb): the same bytes as the
in-memory algorithm it replaced, whatever the chunk size, and a peak memory that does not grow
with the split."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from coreset.data.adversarial import attack
from coreset.data.corruptions import corrupt_images, corrupt_into
from coreset.data.label_noise import flip_labels
from coreset.data.perturb import perturb_into
from coreset.data.sampling import count
from coreset.params import Adversarial, Corrupt, Images, LabelNoise

TYPES = ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur")


def _scenario(method: str = "pgd") -> Corrupt:
    return Corrupt(seed=7, label_noise=LabelNoise(0.2, "symmetric"),
                   images=Images(0.3, TYPES, 3),
                   adversarial=Adversarial(0.25, method, 8 / 255, 2 / 255, 2))


def _model(shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(shape)), 10))


def _in_memory(c: Corrupt, images, labels, num_classes, model):
    """The stage's algorithm before streaming (whole-split copy, one attack call), kept as the
    independent reference."""
    rng = np.random.default_rng(c.seed)
    images = images.copy()
    kind = np.full(len(labels), "", dtype="<U16")
    order = rng.permutation(len(labels))
    n_img, n_adv = count(len(labels), c.images.rate), count(len(labels), c.adversarial.rate)
    img_idx, adv_idx = np.sort(order[:n_img]), np.sort(order[n_img : n_img + n_adv])
    if n_img:
        images[img_idx], kind[img_idx] = corrupt_images(
            images[img_idx], 1.0, list(c.images.types), c.images.severity, rng)
    if n_adv:
        a = c.adversarial
        images[adv_idx] = attack(model, images[adv_idx], labels[adv_idx], method=a.method,
                                 eps=a.eps, alpha=a.alpha, steps=a.steps, seed=c.seed,
                                 disable_progress=True)
        kind[adv_idx] = a.method
    noisy = labels
    if c.label_noise.rate > 0:
        noisy = flip_labels(labels, c.label_noise.rate, num_classes, c.label_noise.mode, rng)
    return images, noisy, kind, noisy != labels


def _streamed(tmp_path: Path, c: Corrupt, images, labels, model, chunk_bytes: int):
    np.save(tmp_path / "raw.npy", images)
    src = np.load(tmp_path / "raw.npy", mmap_mode="r")
    generator = torch.Generator().manual_seed(c.seed)
    a = c.adversarial

    def run(x, y):
        return attack(model, x, y, method=a.method, eps=a.eps, alpha=a.alpha, steps=a.steps,
                      generator=generator, disable_progress=True)

    dst = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=src.dtype,
                                    shape=src.shape)
    noisy, kind, flipped = perturb_into(src, labels, dst, c, 10, run, 256, chunk_bytes)
    dst.flush()
    del dst
    return (tmp_path / "images.npy").read_bytes(), noisy, kind, flipped


@pytest.mark.parametrize(("shape", "chunk_bytes", "method"), [
    ((12, 12, 3), 1, "pgd"),          # every write its own chunk, released at once
    ((12, 12, 3), 20_000, "fgsm"),    # a few rows a chunk, attack chunk = one 256 batch
    ((20, 20, 1), 1 << 26, "pgd"),    # one chunk (the stage's default size)
])
def test_streamed_perturbation_is_byte_identical_to_the_in_memory_one(
        tmp_path, shape, chunk_bytes, method):
    n = 1200  # 300 adversarial rows: two attack batches of 256 + 44
    rng = np.random.default_rng(123)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    c = _scenario(method)
    ref_images, ref_noisy, ref_kind, ref_flipped = _in_memory(c, images, labels, 10,
                                                              _model(shape))
    raw = images.copy()
    got, noisy, kind, flipped = _streamed(tmp_path, c, images, labels, _model(shape),
                                          chunk_bytes)
    np.save(tmp_path / "ref.npy", ref_images)
    assert got == (tmp_path / "ref.npy").read_bytes()  # header and every pixel
    assert np.array_equal(np.load(tmp_path / "raw.npy"), raw)  # the source is untouched
    for a, b in ((noisy, ref_noisy), (kind, ref_kind), (flipped, ref_flipped)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    n_img, n_adv = count(n, 0.3), count(n, 0.25)
    assert (kind == method).sum() == n_adv and (kind != "").sum() == n_img + n_adv
    assert (ref_images != images).any(axis=(1, 2, 3)).sum() > 0.9 * (n_img + n_adv)


def test_chunked_attack_with_one_generator_equals_one_call() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (600, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 600)
    model = _model((8, 8, 3))
    whole = attack(model, x, y, steps=2, batch_size=64, seed=5, disable_progress=True)
    g = torch.Generator().manual_seed(5)
    parts = [attack(model, x[a:b], y[a:b], steps=2, batch_size=64, generator=g,
                    disable_progress=True) for a, b in ((0, 128), (128, 512), (512, 600))]
    assert np.array_equal(np.concatenate(parts), whole)
    # the shared generator is what carries the random starts across chunks: re-seeding each
    # chunk (attack's default) repeats the first chunk's starts and changes the result
    fresh = [attack(model, x[a:b], y[a:b], steps=2, batch_size=64, seed=5,
                    disable_progress=True) for a, b in ((0, 128), (128, 512), (512, 600))]
    assert not np.array_equal(np.concatenate(fresh), whole)


def test_corrupt_into_a_subset_matches_corrupt_images_on_that_subset() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (300, 10, 10, 3), dtype=np.uint8)
    rows = np.sort(rng.choice(300, 120, replace=False))
    ref, ref_kind = corrupt_images(images[rows], 0.5, TYPES, 2, np.random.default_rng(9))
    dst = np.zeros_like(images)
    kind = corrupt_into(images, dst, rows, 0.5, TYPES, 2, np.random.default_rng(9))
    assert np.array_equal(kind, ref_kind)
    touched = rows[kind != ""]
    assert np.array_equal(dst[touched], ref[kind != ""])
    untouched = np.setdiff1d(np.arange(300), touched)
    assert not dst[untouched].any()  # only the corrupted rows are written


_PEAK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import coreset.data.corruptions as corruptions
    from coreset.params import Adversarial, Corrupt, Images, LabelNoise
    from coreset.data.perturb import perturb_into

    def status(key):  # kB -> bytes; VmHWM is this process's own peak RSS
        line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                    if x.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    work, chunk_pixels, chunk_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    corruptions._CHUNK_PIXELS = chunk_pixels  # the per-chunk float working set, a constant
    types = ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur")
    c = Corrupt(seed=0, label_noise=LabelNoise(0.2, "symmetric"), images=Images(0.2, types, 3),
                adversarial=Adversarial(0.0, "pgd", 8 / 255, 2 / 255, 1))
    src = np.load(work / "raw.npy", mmap_mode="r")
    labels = np.load(work / "labels.npy")
    # warm-up on one chunk of every type: code pages and allocator pools are a fixed cost
    step = corruptions._chunk_len(src.shape)
    warm = np.array(src[:step])
    corruptions.corrupt_images(warm, 1.0, types, 3, np.random.default_rng(0))
    del warm
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status("VmRSS")
    dst = np.lib.format.open_memmap(work / "images.npy", mode="w+", dtype=src.dtype,
                                    shape=src.shape)
    noisy, kind, flipped = perturb_into(src, labels, dst, c, 10, chunk_bytes=chunk_bytes)
    dst.flush()
    print(json.dumps({"growth": status("VmHWM") - before, "corrupted": int((kind != "").sum()),
                      "flipped": int(flipped.sum())}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_streamed_corruption_peak_memory_does_not_grow_with_the_split(tmp_path):
    """A 200 MB split (50,000 x 64 x 64 x 1) corrupted at rate 0.2 with label noise: the child's
    peak RSS grows by less than half the split. Measured: 23 MB (16 MiB copy chunks, one small
    corruption chunk, the per-sample arrays); the in-memory stage it replaced grew by 414 MB
    (source, copy, subset copies), and writing the rows through the output's memory map instead
    of pwritev by 228 MB (a page-cache folio per scattered row). The corruption chunk is shrunk
    (_CHUNK_PIXELS) so that its fixed float working set (~300 MB at the default 4 M pixels, the
    same for any N) does not hide the part that grows with N. VmHWM, not ru_maxrss: a child's
    ru_maxrss starts at its parent's peak (it survives exec), which would hide the growth."""
    n, shape = 50_000, (64, 64, 1)
    x = np.lib.format.open_memmap(tmp_path / "raw.npy", mode="w+", dtype=np.uint8,
                                  shape=(n, *shape))
    for i in range(0, n, 4096):  # distinct pages: nothing the kernel could share
        x[i : i + 4096] = np.random.default_rng(i).integers(0, 256, x[i : i + 4096].shape,
                                                             dtype=np.uint8)
    x.flush()
    split = x.nbytes
    del x
    np.save(tmp_path / "labels.npy", np.arange(n, dtype=np.int64) % 10)
    out = subprocess.run([sys.executable, "-c", _PEAK, str(tmp_path), str(1 << 18),
                          str(16 << 20)], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["corrupted"] == 10_000 and report["flipped"] == 10_000
    assert report["growth"] < 0.5 * split, report
