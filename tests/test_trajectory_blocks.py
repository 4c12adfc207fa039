"""The training-dynamics scores (AUM, Dyn-Unc, DUAL, TDDS) computed over blocks of samples give
exactly the whole-array formulas, and hold only a block of float64 temporaries."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreset.scores import registry, trajectory
from helpers_selectors import make_ctx

FAST = settings(derandomize=True, max_examples=25, deadline=None, database=None)


def sliding(v: np.ndarray, w: int) -> np.ndarray:
    return np.moveaxis(np.lib.stride_tricks.sliding_window_view(v, w, axis=1), 3, 2)


def whole_array(name: str, dyn: dict, **kw) -> np.ndarray:
    """The formulas on the whole (S, E, N) arrays in float64, as the code computed them before it
    worked in blocks."""
    if name == "aum":
        return -dyn["epoch_margin"].astype(np.float64).mean(axis=(0, 1))
    prob = dyn["epoch_prob"].astype(np.float64)
    if name == "dyn_unc":
        return sliding(prob, kw["window"]).std(axis=2, ddof=1).mean(axis=(0, 1))
    if name == "dual":
        runs = sliding(prob[:, : kw["trajectory"]], kw["window"])
        return (runs.std(axis=2, ddof=1) * (1.0 - runs.mean(axis=2))).mean(axis=(0, 1))
    t, w, decay = kw["trajectory"], kw["window"], kw["decay"]
    change = dyn["epoch_prob_change"].astype(np.float64)[:, 1:t]
    runs = sliding(change, w - 1)
    spread = np.linalg.norm(runs - runs.mean(axis=2, keepdims=True), axis=2)
    weight = decay * (1.0 - decay) ** (t - w - np.arange(spread.shape[1]))
    total = np.zeros(spread.shape[2])
    for m in range(spread.shape[0]):
        for k in range(spread.shape[1]):
            total += spread[m, k] * weight[k]
    return total / spread.shape[0]


def dynamics(seed: int, s: int, e: int, n: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"epoch_margin": rng.standard_normal((s, e, n)).astype(np.float32),
            "epoch_prob": rng.random((s, e, n)).astype(np.float32),
            "epoch_prob_change": rng.random((s, e, n)).astype(np.float32)}


def run(name: str, dyn: dict, n: int, **kw) -> np.ndarray:
    ctx = make_ctx(np.zeros(n, dtype=np.int64), 2)
    for field, values in dyn.items():
        setattr(ctx, field, values)
    params = {"dyn_unc": {**kw, "view": "train"}}.get(name, kw)
    return registry.get(name).fn(ctx, rng=np.random.default_rng(0), balance=False, **params)


CASES = {"aum": {}, "dyn_unc": {"window": 3}, "dual": {"trajectory": 5, "window": 3},
         "tdds": {"trajectory": 6, "window": 3, "decay": 0.9}}


@FAST
@given(st.integers(0, 2**16), st.integers(1, 3), st.integers(6, 9), st.integers(1, 50),
       st.integers(1, 60))
def test_sample_blocks_give_the_whole_array_scores_bit_for_bit(seed, s, e, n, block):
    dyn = dynamics(seed, s, e, n)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trajectory, "SAMPLE_BLOCK", block)
        for name, kw in CASES.items():
            got = run(name, dyn, n, **kw)
            np.testing.assert_array_equal(got, whole_array(name, dyn, **kw), err_msg=name)


@pytest.mark.parametrize("name", ["dyn_unc", "dual", "tdds"])
def test_temporaries_stay_at_the_block_size(name):
    """S 2, E 12, N 20,000: the whole-array float64 sliding windows would be ~2 x 3 x 10 x 20,000
    x 8 bytes = 9.6 MB per temporary; blocks of 256 samples keep the traced peak under 2 MB
    beyond the (N,) float64 output."""
    dyn = dynamics(0, 2, 12, 20_000)
    kw = {"dyn_unc": {"window": 10}, "dual": {"trajectory": 12, "window": 10},
          "tdds": {"trajectory": 12, "window": 10, "decay": 0.9}}[name]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trajectory, "SAMPLE_BLOCK", 256)
        tracemalloc.start()
        run(name, dyn, 20_000, **kw)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 20_000 * 8 * 2 + 2_000_000, f"{name}: traced peak {peak / 1e6:.1f} MB"
