"""Data selection during training (``train.dynamic``) and the training budget (``train.budget``).

Dynamic methods are epoch planners that the training loop asks, before each epoch, which samples
to train on and with which loss weights, and tells, after each batch, the losses it saw:

    planner = make_planner(kind, pool, epochs=E, seed=s, ...)   # pool: the static selection
    for epoch in range(E):
        indices, weights = planner.plan(epoch)                  # global sample indices
        ... shuffle / batch ``indices``, loss = mean over the batch of weight * ce ...
        planner.update(batch_indices, batch_losses)             # after each batch

They work on any static selection (``pool`` is its kept indices; the full data for ``full``) and
are pure and seeded: the same pool, params and seed give the same plans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coreset.data.sampling import count

DYNAMIC = ("none", "rs2", "infobatch")
BUDGETS = ("epochs", "steps")


class Static:
    """``train.dynamic: none``: every epoch trains on the whole pool with unit weights."""

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = np.asarray(pool, dtype=np.int64)

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pool, np.ones(len(self.pool), dtype=np.float32)

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Static plans ignore the losses."""

    def epoch_size(self, epoch: int) -> int | None:
        return len(self.pool)


class RS2:
    """Repeated sampling of random subsets without replacement (Okanovic et al. ICLR 2024).

    Each epoch trains on ``count(len(pool), ratio)`` samples of the pool; consecutive epochs
    walk through one seeded permutation of the pool, so every sample is used exactly once per
    ceil(1 / ratio) epochs (per ceil(n / m), m the epoch size). At the end of a permutation the
    epoch takes what is left and starts a new permutation whose first samples exclude those, so
    no epoch holds a sample twice. Unit weights. O(n) per permutation.
    """

    def __init__(self, pool: np.ndarray, ratio: float, seed: int) -> None:
        self.pool = np.asarray(pool, dtype=np.int64)
        self.size = max(1, count(len(self.pool), ratio))
        self.rng = np.random.default_rng([seed, 0x52532])
        self.stream = self.rng.permutation(len(self.pool))  # positions not yet used, in order
        self.plans: list[np.ndarray] = []

    def _next(self) -> np.ndarray:
        if len(self.stream) >= self.size:
            take, self.stream = self.stream[: self.size], self.stream[self.size :]
            return take
        tail = self.stream
        fresh = np.setdiff1d(np.arange(len(self.pool)), tail)
        perm = np.concatenate([self.rng.permutation(fresh), self.rng.permutation(tail)])
        head = self.size - len(tail)
        self.stream = perm[head:]
        return np.concatenate([tail, perm[:head]])

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        while len(self.plans) <= epoch:  # plans are drawn in epoch order, whoever asks first
            self.plans.append(np.sort(self.pool[self._next()]))
        chosen = self.plans[epoch]
        return chosen, np.ones(len(chosen), dtype=np.float32)

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """RS2 ignores the losses."""

    def epoch_size(self, epoch: int) -> int | None:
        return self.size


class InfoBatch:
    """InfoBatch (Qin et al. ICLR 2024): unbiased dynamic pruning by loss.

    Each epoch before the annealing phase: the samples whose last recorded loss is below the
    mean of the recorded losses are "well learned"; a seeded random ``prune`` fraction of them is
    left out, and the kept well-learned samples get loss weight n_wl / n_kept (= 1 / (1 - prune)
    up to rounding: the exact inverse of their inclusion probability, so the expected epoch
    gradient equals the full one). Samples left out keep their old loss. The last
    round-half-up(``anneal`` E) epochs (the reference's ``delta`` = 1 - anneal = 0.875) train on
    the whole pool with unit weights. Losses start equal (the reference's 3.0), so the first epoch
    is full. O(n) per epoch.

    Deviations from the reference, both rounding: it keeps int((1 - r) n_wl) samples and weights
    them 1 / (1 - r), biased when (1 - r) n_wl is not an integer (here the weight follows the
    count); and it prunes while epoch <= delta E, so 200 epochs anneal over 24, not 25.
    """

    def __init__(self, pool: np.ndarray, epochs: int, seed: int, prune: float = 0.5,
                 anneal: float = 0.125) -> None:
        self.pool = np.asarray(pool, dtype=np.int64)
        self.epochs, self.prune, self.anneal = epochs, prune, anneal
        self.seed = seed
        self.loss = np.full(len(self.pool), 3.0)
        self.where = {int(g): i for i, g in enumerate(self.pool)}

    def annealing(self, epoch: int) -> bool:
        return epoch >= self.epochs - count(self.epochs, self.anneal)

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        weights = np.ones(len(self.pool), dtype=np.float32)
        if self.annealing(epoch):
            return self.pool, weights
        learned = np.flatnonzero(self.loss < self.loss.mean())
        keep = count(len(learned), 1.0 - self.prune) if len(learned) else 0
        rng = np.random.default_rng([self.seed, 0x1B, epoch])
        kept_learned = rng.choice(learned, size=keep, replace=False) if keep else learned[:0]
        dropped = np.setdiff1d(learned, kept_learned)
        chosen = np.setdiff1d(np.arange(len(self.pool)), dropped)
        if keep:
            weights[kept_learned] = len(learned) / keep
        return self.pool[chosen], weights[chosen]

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        pos = np.fromiter((self.where[int(i)] for i in indices), dtype=np.int64,
                          count=len(indices))
        self.loss[pos] = np.asarray(losses, dtype=np.float64)

    def epoch_size(self, epoch: int) -> int | None:
        """None before annealing: the size depends on the losses."""
        return len(self.pool) if self.annealing(epoch) else None


Planner = Static | RS2 | InfoBatch


def make_planner(kind: str, pool: np.ndarray, *, epochs: int, seed: int, ratio: float = 0.1,
                 prune: float = 0.5, anneal: float = 0.125) -> Planner:
    """The planner of ``train.dynamic`` over the static selection ``pool``."""
    if kind == "none":
        return Static(pool)
    if kind == "rs2":
        return RS2(pool, ratio, seed)
    if kind == "infobatch":
        return InfoBatch(pool, epochs, seed, prune, anneal)
    raise ValueError(f"train.dynamic = {kind!r} is not allowed: one of {', '.join(DYNAMIC)}")


# --- the training budget ------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """How long a run trains. ``epochs``: full passes over its data (the last one may be cut
    short in steps mode); ``steps_per_epoch``: batches per full pass; ``total_steps``: SGD steps
    in all. The lr schedule is indexed by :func:`progress` (step / total_steps)."""

    mode: str
    epochs: int
    steps_per_epoch: int
    total_steps: int


def budget(mode: str, n: int, batch_size: int, epochs: int, steps: int = 0) -> Budget:
    """``epochs``: E passes over the n training samples (DeepCore, Moderate): ceil(n / B) steps
    each, E ceil(n / B) in all, so a smaller subset trains for fewer steps. ``steps``: a fixed
    number of SGD steps whatever n (CCS: 40,000 at batch 256; DataComp): ceil(steps / ceil(n / B))
    passes, the last one stopped at the budget."""
    if mode not in BUDGETS:
        raise ValueError(f"train.budget = {mode!r} is not allowed: one of {', '.join(BUDGETS)}")
    if n < 1 or batch_size < 1:
        raise ValueError(f"a budget needs n >= 1 and batch_size >= 1, got {n}, {batch_size}")
    per_epoch = math.ceil(n / batch_size)
    if mode == "epochs":
        return Budget(mode, epochs, per_epoch, epochs * per_epoch)
    if steps < 1:
        raise ValueError(f"train.steps = {steps!r} is not allowed: an integer >= 1 when "
                         "train.budget is steps")
    return Budget(mode, math.ceil(steps / per_epoch), per_epoch, steps)


def progress(step: int, total_steps: int) -> float:
    """Where the lr schedule stands after ``step`` SGD steps: step / total_steps in [0, 1]. Every
    schedule (cosine, multistep and step in epochs of the full budget) is a function of it, so a
    steps budget and an epochs budget share one schedule definition; milestones given in epochs
    are read as fractions milestone / train.epochs."""
    return min(step / total_steps, 1.0)


def protocol_line(*, budget_mode: str = "epochs", epochs: int, steps: int = 0,
                  batch_size: int, report: str = "final", dynamic: str = "none",
                  dynamic_ratio: float | None = None) -> str:
    """One sentence for a table caption, e.g. 'Protocol: 200 epochs over the subset, batch 128,
    final-epoch accuracy.' or 'Protocol: 40000 SGD steps whatever the subset size, batch 256,
    best-epoch accuracy (test-set selection); dynamic: RS2 at 10 % per epoch.'"""
    if budget_mode == "steps":
        length = f"{steps} SGD steps whatever the subset size"
    else:
        length = f"{epochs} epoch{'s' if epochs != 1 else ''} over the subset"
    acc = "best-epoch accuracy (test-set selection)" if report == "best" else \
        "final-epoch accuracy"
    line = f"Protocol: {length}, batch {batch_size}, {acc}"
    if dynamic == "rs2":
        line += f"; dynamic: RS2 without replacement, {100 * (dynamic_ratio or 0):g} % per epoch"
    elif dynamic == "infobatch":
        line += "; dynamic: InfoBatch"
    return line + "."
