"""Pretraining's dynamics at scale: end_epoch reads the N x C logits in row chunks (bitwise the
whole-array result, bounded temporaries), and params whose dynamics exceed data.host_memory_gb
are refused with one line naming the keys (config.dynamics_bytes)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coreset import config
from coreset.training.dynamics import record
from coreset.training.loop import _Dynamics, record_rows
from test_rules_across_keys import DEFAULT, edited

FAST = settings(derandomize=True, max_examples=30, deadline=None, database=None)


@FAST
@given(n=st.integers(1, 60), c=st.integers(1, 12), elements=st.integers(1, 400),
       seed=st.integers(0, 2**16))
def test_chunked_record_equals_the_whole_array_bitwise(n, c, elements, seed):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(0, 5, (n, c)).astype(np.float32))
    labels = rng.integers(0, c, n)
    whole = record(logits.numpy(), labels)
    got = {key: np.empty(n, np.float32) for key in whole}
    for start, values in record_rows(logits, labels, elements):
        for key, column in values.items():
            got[key][start : start + len(column)] = column
    for key in whole:
        assert got[key].tobytes() == whole[key].tobytes(), key


def test_end_epoch_allocates_no_n_by_c_float64_copy():
    """The old end_epoch ran record() on the whole N x C array: several float64 N x C
    temporaries (4 x 32 MB here); chunked, the peak is far below one of them."""
    n, c = 4000, 1000
    labels = torch.from_numpy(np.arange(n) % c)
    dyn = _Dynamics.empty(1, labels, c)
    dyn.epoch_logits.normal_(generator=torch.Generator().manual_seed(0))
    tracemalloc.start()
    dyn.end_epoch(0, np.zeros(n, np.float32))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * c * 8 / 2  # 16 MB: half of one float64 N x C copy (old: > 100 MB)
    expect = record(dyn.epoch_logits.numpy(), dyn.labels)
    assert all(np.array_equal(dyn.extra[k][0], v) for k, v in expect.items())


def test_the_host_arrays_of_the_dynamics_are_what_the_bound_counts():
    """config.DYNAMICS_BYTES is per epoch and sample exactly what _Dynamics keeps on the host,
    eval_prob included: a recorded array the bound forgot fails here."""
    epochs, n, c = 3, 50, 7
    dyn = _Dynamics.empty(epochs, torch.zeros(n, dtype=torch.int64), c)
    host = dyn.correct.nbytes + dyn.loss.nbytes + sum(a.nbytes for a in dyn.extra.values())
    assert host == epochs * n * config.DYNAMICS_BYTES
    assert dyn.epoch_logits.numel() * config.LOGIT_BYTES == n * c * 4


def test_dynamics_bytes_by_hand():
    # ImageNet-1k, 1 seed, 10 epochs: 1,281,167 x 1,000 x 4 + 2 x 10 x 1,281,167 x 25 (correct
    # 1 byte; loss, margin, prob, prob_margin, prob_change, eval_prob 4 each)
    assert config.dynamics_bytes(1_281_167, 1000, 10, 1) == 5_124_668_000 + 640_583_500


def test_imagenet_dynamics_over_the_host_budget_are_refused_naming_the_keys():
    p = config.parse(edited({"pretrain.epochs": 1, "pretrain.seeds": [0],
                             "data.host_memory_gb": 4}))
    with pytest.raises(config.ConfigError) as err:
        config.check_sizes(p, 1_281_167, "data/raw/train_labels.npy", 1000)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("params.yaml: data.host_memory_gb = 4.0 is not allowed: at least 4.84")
    assert "pretrain.epochs" in msg and "pretrain.seeds" in msg
    ok = config.parse(edited({"pretrain.epochs": 1, "pretrain.seeds": [0],
                              "data.host_memory_gb": 4.84}))
    config.check_sizes(ok, 1_281_167, "x", 1000)


def test_the_digits_defaults_fit():
    config.check_sizes(config.parse(DEFAULT), 1437, "data/raw/train_labels.npy", 10)


def test_embed_outputs_of_three_imagenet_models_need_their_15_gib():
    """3 x 1,281,167 x 1,002 x 4 bytes = 14.35 GiB of softmax, loss and gradient norm."""
    p = config.parse(edited({"pretrain.epochs": 1, "pretrain.seeds": [0, 1, 2],
                             "data.host_memory_gb": 12}))
    with pytest.raises(config.ConfigError) as err:
        config.check_sizes(p, 1_281_167, "x", 1000)
    assert str(err.value).startswith("params.yaml: data.host_memory_gb = 12.0 is not allowed: "
                                     "at least 14.35 for embed's outputs")
    config.check_sizes(config.parse(edited({"pretrain.epochs": 1, "pretrain.seeds": [0, 1, 2],
                                            "data.host_memory_gb": 14.4})), 1_281_167, "x", 1000)
