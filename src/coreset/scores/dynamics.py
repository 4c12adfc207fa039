"""Per-sample training dynamics as a selector asks for them: :func:`require` returns a recorded
(S, E, N) field of the scoring context or says how to get it. What the training loop records is
``coreset.training.dynamics``."""

from __future__ import annotations

import numpy as np

from coreset.scores.context import ScoringContext
from coreset.training.dynamics import ALL_FIELDS


def require(ctx: ScoringContext, name: str, method: str) -> np.ndarray:
    """The (S, E, N) dynamics field ``name`` of ``ctx``, or a ValueError saying how to get it."""
    value = getattr(ctx, name)
    if value is None:
        raise ValueError(
            f"{method} needs the per-epoch training dynamics {name!r} (S, E, N), which this "
            f"pretraining did not record: pretrain must store {ALL_FIELDS[name]!r} in "
            f"data/dynamics.npz (training.dynamics.record on every training batch)")
    return value
