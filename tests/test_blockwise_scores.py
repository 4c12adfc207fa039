"""Scores computed in row blocks (for ImageNet-shaped inputs, memory-mapped) give exactly the
whole-array scores, and hold only a block of temporaries; .npz members memory-map faithfully."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from coreset.io import load_npz, save_npz
from coreset.scores import context, influence, registry
from helpers_selectors import make_ctx

FAST = settings(derandomize=True, max_examples=25, deadline=None, database=None)
ROW_WISE = ("el2n", "grand", "least_confidence", "entropy", "margin")


def random_ctx(seed: int, n: int, c: int, s: int, d: int = 5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.standard_normal((s, n, c)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    probs[:, rng.random(n) < 0.2, 0] = 0.0  # exact zeros: entropy's 0 log 0
    return make_ctx(labels, c, features=rng.standard_normal((n, d)).astype(np.float32),
                    probs=probs.astype(np.float32))


def whole_array(name: str, ctx) -> np.ndarray:
    """Yesterday's whole-array formulas, written out independently of the blockwise code."""
    p = ctx.probs
    onehot = np.eye(ctx.num_classes, dtype=np.float32)[ctx.labels]
    if name == "el2n":
        return np.linalg.norm(p - onehot[None], axis=2).mean(axis=0).astype(np.float64)
    if name == "grand":
        g = np.linalg.norm(p - onehot[None], axis=2)
        h2 = np.square(ctx.features, dtype=np.float64).sum(axis=1)
        return (g * np.sqrt(1.0 + h2)[None]).mean(axis=0).astype(np.float64)
    q = p.astype(np.float64)
    if name == "least_confidence":
        return (1.0 - q.max(axis=-1)).mean(axis=0)
    if name == "entropy":
        return (-(q * np.log(np.where(q > 0, q, 1.0))).sum(axis=-1)).mean(axis=0)
    top2 = np.partition(q, q.shape[-1] - 2, axis=-1)[..., -2:]
    return (-(top2[..., 1] - top2[..., 0])).mean(axis=0)


@FAST
@given(st.integers(0, 2**16), st.integers(1, 40), st.integers(2, 9), st.integers(1, 3),
       st.integers(1, 4000))
def test_row_blocks_give_the_whole_array_scores_bit_for_bit(seed, n, c, s, block_bytes):
    ctx = random_ctx(seed, n, c, s)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(context, "BLOCK_BYTES", block_bytes)  # 1 .. a few rows per block
        for name in ROW_WISE:
            got = registry.get(name).fn(ctx, rng=np.random.default_rng(0), balance=True)
            want = whole_array(name, ctx)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name


def test_row_blocks_cover_every_row_once():
    for n, row, block in [(0, 8, 64), (1, 8, 1), (10, 8, 24), (10, 100, 1), (7, 8, 1 << 20)]:
        rows = np.concatenate([np.arange(n)[s] for s in context.row_blocks(n, row, block)] or
                              [np.empty(0, int)])
        assert rows.tolist() == list(range(n))


@pytest.mark.parametrize("name", ROW_WISE)
def test_a_score_holds_a_block_not_the_probabilities(name, tmp_path, monkeypatch):
    """On memory-mapped (S, N, C) probabilities the temporaries are O(block), not O(S N C): the
    whole-array code allocated the N x C one-hot and an S x N x C error (or a float64 copy)."""
    ctx = random_ctx(0, 20_000, 100, 3)
    save_npz(tmp_path / "e.npz", probs=ctx.probs)
    ctx.probs = load_npz(tmp_path / "e.npz", mmap=True)["probs"]  # 24 MB on disk, not in memory
    monkeypatch.setattr(context, "BLOCK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        registry.get(name).fn(ctx, rng=np.random.default_rng(0), balance=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # outputs: a few (S, N) arrays (0.5 MB each); one block: ~1-3 MB of temporaries
    assert peak < 8 * 2**20, f"{name}: {peak / 2**20:.1f} MB"


@settings(derandomize=True, max_examples=10, deadline=None, database=None)
@given(st.integers(0, 2**16), st.integers(1, 5))
def test_influence_in_small_blocks_matches_one_block(seed, rows_per_block):
    ctx = random_ctx(seed, 60, 4, 1)
    kinds = [(h, k) for h in ("exact", "kfac") for k in influence.KINDS]
    whole = [influence.influence(ctx, rng=np.random.default_rng(0), balance=False, hessian=h,
                                 kind=k) for h, k in kinds]
    with pytest.MonkeyPatch.context() as mp:
        width = ctx.num_classes * (ctx.features.shape[1] + 1)
        mp.setattr(influence, "_BLOCK_ELEMENTS", rows_per_block * width)
        for (h, k), want in zip(kinds, whole, strict=True):
            got = influence.influence(ctx, rng=np.random.default_rng(0), balance=False, hessian=h,
                                      kind=k)
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=f"{h} {k}")


ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.uint8]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)


@FAST
@given(st.dictionaries(st.sampled_from(["a", "b", "features", "probs"]), ARRAYS, min_size=1),
       st.booleans())
def test_memory_mapped_npz_members_equal_the_loaded_ones(tmp_path_factory, arrays, fortran):
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    if fortran:
        arrays = {k: np.asfortranarray(v) for k, v in arrays.items()}
    save_npz(path, **arrays)
    loaded, mapped = load_npz(path), load_npz(path, mmap=True)
    assert sorted(mapped) == sorted(loaded)
    for k, v in loaded.items():
        m = mapped[k]
        assert m.dtype == v.dtype and m.shape == v.shape and np.array_equal(m, v, equal_nan=True)
        if m.size:
            assert isinstance(m, np.memmap) and not m.flags.writeable


def test_a_compressed_npz_is_read_whole(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", x=np.arange(10.0))
    assert load_npz(tmp_path / "c.npz", mmap=True)["x"].tolist() == list(np.arange(10.0))
