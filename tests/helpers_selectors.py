"""Helpers for the selector tests: a ScoringContext from arrays, a ModelAccess from a network."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from coreset.scores.context import ModelAccess, ScoringContext


def make_access(nets: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> ModelAccess:
    """ModelAccess over in-memory tensors: batches(batch_size, indices=None) -> (x, y, idx)."""

    def batches(batch_size: int, indices: np.ndarray | None = None):
        order = np.arange(len(x)) if indices is None else np.asarray(indices)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            t = torch.as_tensor(idx)
            yield x[t], y[t], idx

    return ModelAccess(device=torch.device("cpu"), load_models=lambda: [n.eval() for n in nets],
                       batches=batches)


def make_ctx(
    labels: np.ndarray,
    num_classes: int,
    *,
    features: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    model: ModelAccess | None = None,
    epochs: int = 2,
) -> ScoringContext:
    """A ScoringContext with consistent shapes; probs may be (N, C) (one model) or (S, N, C)."""
    n = len(labels)
    if features is None:
        features = np.zeros((n, 4), dtype=np.float32)
    if probs is None:
        probs = np.full((n, num_classes), 1.0 / num_classes, dtype=np.float32)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim == 2:
        probs = probs[None]
    s = probs.shape[0]
    loss = -np.log(np.clip(probs[:, np.arange(n), labels], 1e-12, None)).astype(np.float32)
    return ScoringContext(
        labels=np.asarray(labels, dtype=np.int64), num_classes=num_classes,
        features=np.asarray(features, dtype=np.float32), probs=probs, loss=loss,
        correct=np.zeros((s, epochs, n), dtype=bool),
        epoch_loss=np.repeat(loss[:, None], epochs, axis=1), model=model,
    )


class LinearNet(nn.Module):
    """forward = classifier(features(x)) with identity features: a linear multi-class model."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.classifier = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.classifier.weight.copy_(w)
            self.classifier.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.flatten(1)))


class TinyCNN(nn.Module):
    """conv -> BatchNorm -> ReLU -> pool -> linear; small enough for brute-force loops."""

    def __init__(self, channels: int = 1, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.classifier = nn.Linear(16, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def trained_bn_cnn(seed: int = 0, n: int = 24, num_classes: int = 3):
    """A TinyCNN whose BatchNorm running statistics are not the defaults, plus data (x, y)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TinyCNN(num_classes=num_classes)
    x = torch.randn(n, 1, 6, 6, generator=g) * 2 + 0.5
    y = torch.randint(0, num_classes, (n,), generator=g)
    net.train()
    with torch.no_grad():
        for _ in range(3):  # update running mean/var away from (0, 1)
            net(x)
    return net.eval(), x, y
