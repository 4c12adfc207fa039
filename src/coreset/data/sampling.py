"""Seeded choice of the samples a perturbation is applied to.

Shared by the corruption, label-noise and adversarial scenarios of the `corrupt` stage so that
"a rate of r" means the same thing everywhere: exactly round-half-up(r * n) samples, drawn
uniformly at random without replacement (Moderate coreset paper, Xia et al. 2023, Sec. 5).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from numbers import Integral, Real

import numpy as np


def count(n: int, rate: float) -> int:
    """Number of samples a rate selects: round-half-up(rate * n).

    Decimal arithmetic on repr(rate) avoids binary float artefacts: 0.35 * 10 is
    3.4999999999999996 in floats and would round to 3 instead of 4.
    """
    _check_n(n)
    check_rate(rate)
    exact = Decimal(repr(float(rate))) * int(n)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def choose(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of exactly `count(n, rate)` of `n` samples, uniform without replacement."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    k = count(n, rate)
    return np.sort(rng.choice(int(n), size=k, replace=False)).astype(np.int64)


def check_rate(rate: float) -> None:
    """Raise ValueError unless 0 <= rate <= 1."""
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
