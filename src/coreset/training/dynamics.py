"""Per-sample training dynamics: what the training loop records each epoch.

:func:`record` turns one mini-batch's logits into the per-sample quantities that AUM, CCS,
Dyn-Unc and TDDS read. ``training.loop.fit`` calls it on every batch when ``record_dynamics`` is
set (the same augmented, train-mode forward pass that ``correct`` and ``loss`` come from, as AUM's
and Toneva et al.'s reference code record them), and stores each array at ``[epoch, idx]``. Pure
numpy (the select stage never imports torch). O(B C) per batch.

``prob_change`` (TDDS's d_t = sum_c |p_t,c (log p_t,c - log p_t-1,c)| over all C classes) needs
the previous epoch's softmax of the same sample; the loop computes it on the device from the
logits it already keeps per sample (no extra N x C array), 0 at a sample's first epoch.

``eval_prob`` is the assigned label's probability on the UN-augmented image in EVAL mode, taken
after each epoch's last step by one float32 inference pass over the training set
(``training.loop.assigned_prob``, as ``predict`` computes every selector's outputs): the view
Dyn-Unc's reference (He et al. 2023) reads each epoch. One more (E, N) float32 array.
"""

from __future__ import annotations

import numpy as np

# ScoringContext field -> key of record()'s output (and of the arrays in data/dynamics.npz)
FIELDS = {"epoch_margin": "margin", "epoch_prob": "prob", "epoch_prob_margin": "prob_margin"}
# ... and the field the loop computes itself, from this epoch's and the previous epoch's logits of
# each sample (training.loop._Dynamics.record): TDDS's per-epoch change over all C classes
CHANGE = ("epoch_prob_change", "prob_change")
# ... and the eval-mode, un-augmented assigned-label probability after each epoch (Dyn-Unc's view)
EVAL = ("epoch_eval_prob", "eval_prob")
ALL_FIELDS = {**FIELDS, CHANGE[0]: CHANGE[1], EVAL[0]: EVAL[1]}
# TDDS's reference adds this inside its logarithms (log(p + 1e-8)); kept for an exact match
CHANGE_EPS = 1e-8


def _largest_other(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """max over classes c != label of values[:, c]; -inf for a single class."""
    other = values.copy()
    other[np.arange(len(labels)), labels] = -np.inf
    return other.max(axis=1)


def record(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """(B,) float32 arrays from logits (B, C) and the observed labels (B,):

    - ``margin``: assigned logit - largest other logit (Pleiss et al. 2020's margin, whose mean
      over epochs is AUM);
    - ``prob``: softmax probability of the assigned label (Dyn-Unc, TDDS);
    - ``prob_margin``: that probability - the largest other probability (what CCS's reference
      code accumulates as ``accumulated_margin``).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))
    shifted = np.exp(z - z.max(axis=1, keepdims=True))  # stable softmax
    p = shifted / shifted.sum(axis=1, keepdims=True)
    return {
        "margin": (z[rows, y] - _largest_other(z, y)).astype(np.float32),
        "prob": p[rows, y].astype(np.float32),
        "prob_margin": (p[rows, y] - _largest_other(p, y)).astype(np.float32),
    }
