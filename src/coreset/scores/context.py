"""What a selector sees: the embed/pretrain artifacts, plus lazy access to the model and images.

Everything here is per training sample, in the order of the (possibly perturbed) training split.
Array shapes: N samples, C classes, D penultimate features, S pretrained models (pretrain seeds),
E pretraining epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# bytes of float64 temporaries per row block of a blockwise score: (rows, S, C) blocks stay at
# 64 MiB whatever N is (ImageNet: S N C float32 probabilities are 15 GB, memory-mapped)
BLOCK_BYTES = 1 << 26


def row_blocks(n: int, row_bytes: int, block_bytes: int | None = None) -> Iterator[slice]:
    """Slices of consecutive rows whose temporaries (``row_bytes`` each) fit ``block_bytes``.

    Scores that reduce each row on its own (a norm, a max, a sum over classes) give the same
    bits whatever the block size: numpy reduces every row of a block exactly as it reduces that
    row of the whole array (tests/test_blockwise_scores.py checks it). ``block_bytes`` None:
    the module's ``BLOCK_BYTES`` (read at call time, so that tests can shrink it)."""
    step = max(1, (block_bytes or BLOCK_BYTES) // max(row_bytes, 1))
    return (slice(s, min(n, s + step)) for s in range(0, n, step))


@dataclass
class ModelAccess:
    """Lazy access to the pretrained models and the training images, for backward-pass selectors.

    ``models``: the pretrained networks in eval mode on ``device``, one per pretrain seed. Each has
    ``forward(x) -> logits``, ``features(x) -> (B, D)`` penultimate features and ``classifier``,
    its final ``nn.Linear`` (so ``classifier(features(x)) == forward(x)``).
    ``batches(batch_size, indices=None)`` yields ``(x, y, idx)``: normalised float images on
    ``device`` (B, channels, H, W), observed labels (B,) int64 on ``device``, and the sample indices
    (np.ndarray) of the batch, in order.
    """

    device: object  # torch.device; typed loosely so that numpy-only selectors never import torch
    load_models: Callable[[], list]
    batches: Callable[..., Iterator[tuple]]
    _models: list | None = None

    @property
    def models(self) -> list:
        if self._models is None:
            self._models = self.load_models()
        return self._models


@dataclass
class ScoringContext:
    labels: np.ndarray  # (N,) int64, observed (possibly noisy) training labels
    num_classes: int
    features: np.ndarray  # (N, D) float32, penultimate features of the first model, eval mode
    probs: np.ndarray  # (S, N, C) float32, softmax outputs of every pretrained model
    loss: np.ndarray  # (S, N) float32, per-sample cross-entropy of every pretrained model
    correct: np.ndarray  # (S, E, N) bool, per-epoch correctness during pretraining (train mode)
    epoch_loss: np.ndarray  # (S, E, N) float32, per-epoch loss during pretraining (train mode)
    model: ModelAccess | None = None  # None when the stage runs without a model (tests)
    grad_norm: np.ndarray | None = None  # (S, N) closed-form last-layer gradient norm per model
    # Per-epoch training dynamics beyond correct / loss, recorded by ``training.dynamics.record``
    # on the same augmented mini-batches (train mode); None when pretrain did not record them.
    epoch_margin: np.ndarray | None = None  # (S, E, N) float32, assigned logit - largest other
    epoch_prob: np.ndarray | None = None  # (S, E, N) float32, softmax prob of the assigned label
    epoch_prob_margin: np.ndarray | None = None  # (S, E, N) float32, that prob - largest other
    # (S, E, N) float32, TDDS's change of the softmax over all classes from the epoch before (0 at
    # epoch 0), computed by the loop per batch (training.loop.prob_change)
    epoch_prob_change: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.labels)

    def onehot(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(len(idx), C) float32 one-hot labels: call it on blocks or classes (N x C at scale)."""
        out = np.zeros((len(self.labels[idx]), self.num_classes), dtype=np.float32)
        out[np.arange(len(out)), self.labels[idx]] = 1.0
        return out

    def blocks(self, row_bytes: int, block_bytes: int | None = None) -> Iterator[slice]:
        """:func:`row_blocks` over the N samples."""
        return row_blocks(self.n, row_bytes, block_bytes)

    def last_layer_grads(self, idx: np.ndarray, model: int = 0) -> np.ndarray:
        """Closed-form gradient of the CE loss w.r.t. the last linear layer, for samples ``idx``.

        Bias part g = softmax - onehot (C,); weight part g (x) h (C*D). Returned as
        [g, (g[:, :, None] * h[:, None, :]).reshape] of shape (len(idx), C + C*D), float32.
        Only the penultimate features of the first model are stored, so ``model`` must be 0 for the
        weight part; call it on blocks of ``idx`` to keep memory linear in N.
        """
        g = self.probs[model, idx] - self.onehot(idx)
        h = self.features[idx]
        return np.concatenate([g, (g[:, :, None] * h[:, None, :]).reshape(len(g), -1)], axis=1)

    def bias_grads(self, idx: np.ndarray | slice = slice(None), model: int = 0) -> np.ndarray:
        """softmax - onehot (the last-layer bias gradient), (len(idx), C)."""
        return self.probs[model, idx] - self.onehot(idx)
