"""embed reduces each prediction batch on its own (never the N x C logits of a whole model): the
rows it writes must be bit for bit those of the whole set at once, for any split into batches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coreset.stages.embed import _per_sample


def _whole(logits: torch.Tensor, h: torch.Tensor, labels: torch.Tensor, c: int) -> dict:
    # the pre-batching formulas, applied to the whole set
    prob = logits.softmax(1)
    err = prob - F.one_hot(labels, c).float()
    return {"probs": prob, "loss": F.cross_entropy(logits, labels, reduction="none"),
            "grad_norm": err.norm(dim=1) * (1 + h.square().sum(1)).sqrt()}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), c=st.integers(2, 40), d=st.integers(1, 70),
       batch=st.integers(1, 128), seed=st.integers(0, 2**16))
def test_batches_give_the_whole_sets_rows(n, c, d, batch, seed):
    g = torch.Generator().manual_seed(seed)
    logits, h = torch.randn(n, c, generator=g) * 5, torch.randn(n, d, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    want = _whole(logits, h, labels, c)
    for start in range(0, n, batch):
        rows = slice(start, start + batch)
        got = _per_sample(logits[rows], h[rows], labels[rows], c)
        for name, value in got.items():
            np.testing.assert_array_equal(value.numpy(), want[name][rows].numpy(), err_msg=name)
