"""Which selector runs fit this machine's time and memory at a given N: a selector may declare
the dominant cost of a run (``@register(..., cost=Cost(...))``), and a run whose estimate exceeds
the limits is refused before any work, in one line that names the estimate, the limit and the
largest N accepted with the same classes, features and parameters.

Balanced selections work per class (n_c = N / C samples per greedy), which keeps every
registered selector within the limits at the ImageNet shape (N 1,281,167, C 1000, D 512); the
costs that grow like N^2 are those of the global (``balance: false``) variants of the greedy,
graph and kNN selectors, and of the exact influence Hessian. The estimates count the dominant
floating-point operations and the largest arrays, not constants of the implementation; see
docs/selectors.md ("Speed and memory at ImageNet scale") for measured times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# about 10-20 minutes of 2 cores at the 10-15 GFLOP/s that float64 BLAS sustains here
MAX_OPS = 1e13
MAX_BYTES = 8 * 2**30  # the largest array a score may allocate (24 GiB shared by the stages)


class ScaleError(ValueError):
    """A run that would exceed MAX_OPS or MAX_BYTES (one line)."""


@dataclass(frozen=True)
class Cost:
    """``estimate(n, c, d, balance, params) -> (operations, bytes)`` of a score run on N = n
    samples, C = c classes, D = d features; ``formula`` is what the refusal prints."""

    formula: str
    estimate: Callable[[int, int, int, bool, dict], tuple[float, float]]

    def limit(self, c: int, d: int, balance: bool, params: dict) -> int:
        """The largest N within both limits (the estimates grow with N; 0 when even N = 1 does
        not fit): bisection."""
        def fits(n: int) -> bool:
            ops, size = self.estimate(n, c, d, balance, params)
            return ops <= MAX_OPS and size <= MAX_BYTES

        if not fits(1):
            return 0
        lo, hi = 1, 2
        while fits(hi) and hi < 2**40:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo


def check(name: str, cost: Cost | None, n: int, c: int, d: int, balance: bool,
          params: dict) -> None:
    """Raise ScaleError when the run's estimated cost exceeds the limits."""
    if cost is None:
        return
    ops, size = cost.estimate(n, c, d, balance, params)
    over = ([f"about {ops:.1e} operations (limit {MAX_OPS:.0e})"] if ops > MAX_OPS else []) + \
        ([f"a {size / 2**30:.0f} GiB array (limit {MAX_BYTES / 2**30:.0f} GiB)"]
         if size > MAX_BYTES else [])
    if not over:
        return
    largest = cost.limit(c, d, balance, params)
    accepts = (f"the largest N it accepts here is {largest}" if largest else
               f"no N fits with C = {c} and D = {d}")
    raise ScaleError(
        f"{name} (balance: {'true' if balance else 'false'}) at N = {n}, C = {c}, D = {d} needs "
        f"{' and '.join(over)}: {cost.formula}; {accepts}"
        + ("; use balance: true (per class)" if not balance else ""))


def length(n: int, params: dict) -> int:
    """A greedy order's length ceil(max_ratio * n) (``greedy.greedy_length``, in floats)."""
    return math.ceil(float(params.get("max_ratio", 1.0)) * n)


def global_only(estimate: Callable[[int, int, int, dict], tuple[float, float]]
                ) -> Callable[[int, int, int, bool, dict], tuple[float, float]]:
    """An estimate of the global run; balanced runs (per class) are not limited."""
    def cost(n: int, c: int, d: int, balance: bool, params: dict) -> tuple[float, float]:
        return (0.0, 0.0) if balance else estimate(n, c, d, params)

    return cost


# the similarity-based greedy selectors of kernels.py on all N samples: every candidate's first
# gain reads a row of N similarities of (C + D)-dim factored gradients (or D-dim features)
def gradient_width(c: int, d: int, params: dict) -> int:
    space = params.get("space", "gradients")
    grads = params.get("grads", "full_last_layer")
    if space == "features":
        return d
    return c if (grads == "bias" or space == "bias_gradients") else c + d


SIMILARITY_GREEDY = Cost(
    "a global greedy on an N x N similarity computed on the fly, O(N^2 (C + D)) for the first "
    "gains, plus O(N k) memory for log_determinant (k = max_ratio N)",
    global_only(lambda n, c, d, p: (2.0 * n * n * gradient_width(c, d, p),
                                    8.0 * n * length(n, p) if "ridge" in p else 8.0 * n)))
FEATURE_GREEDY = Cost(
    "k = max_ratio N greedy steps over all N D-dim features, O(k N D)",
    global_only(lambda n, c, d, p: (2.0 * length(n, p) * n * d, 8.0 * n * d)))
KNN = Cost(
    "an exact kNN graph over all N D-dim features, O(N^2 D)",
    global_only(lambda n, c, d, p: (2.0 * n * n * d, 8.0 * n * d)))
