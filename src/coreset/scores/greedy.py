"""Greedy orders: their length, the per-class runner, and the optimizers of a set function.

Every greedy selector (herding, k-center, contextual diversity, the submodular functions, CRAIG,
GRAD-MATCH, GLISTER) returns an ORDER, first pick first, turned into a score by
:func:`~coreset.scores.selection.order_to_score`. Its length is :func:`greedy_length` (one formula
for all), and it is computed per class or globally by :func:`class_orders` (one runner for all).
An order never depends on the selection ratio: the first k picks of a run of length L >= k are
exactly the picks of a run of length k (every optimizer here is prefix-consistent, the stochastic
one included, see :func:`stochastic_greedy`), so ``select`` takes any prefix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm

from coreset.scores.selection import exact_rate, order_to_score

OPTIMIZERS = ("naive", "lazy", "stochastic")
T = TypeVar("T")

# greedy(positions of one class, or of all samples; that group's generator) -> order (positions
# into the given indices, first pick first)
Greedy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def greedy_length(n: int, max_ratio: float) -> int:
    """Length of a greedy order that serves every ratio <= max_ratio: ceil(max_ratio * n), with
    the ratio read as the decimal it is written as (0.3 * 10 = 3, not 3.0000000000000004).

    ``select`` keeps at most ceil(ratio * n_c) of a class (largest remainders) and
    round-half-up(ratio * n) <= ceil(ratio * n) globally, so the order always reaches its budget.
    """
    if not 0 < max_ratio <= 1:
        raise ValueError(f"max_ratio={max_ratio!r}: allowed values are in (0, 1]")
    return min(n, math.ceil(exact_rate(max_ratio) * n))


# ----------------------------------------------------------------------------- per-class runs


def default_workers() -> int:
    """Concurrent classes: the usable cores, at most 4 (each holds one class's state)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 4))


@contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Limit BLAS threads (process-wide) inside the block; no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limit = None
    if limit is None:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def map_classes(fn: Callable[..., T], *per_class: Sequence, workers: int | None = None,
                desc: str | None = None) -> list[T]:
    """``[fn(*args) for args in zip(*per_class)]``, classes run in ``workers`` threads (default
    :func:`default_workers`) on single-threaded BLAS: per-class work is many small matrix
    products, on which multi-threaded BLAS gains little and collapses when other processes share
    the cores (5-15x slower on 2 busy cores). Results come back in class order, so they do not
    depend on ``workers``; ``fn`` must not share mutable state across calls. A tqdm bar counts
    the finished classes when ``desc`` is given. Memory: ``workers`` class states at a time."""
    count = len(per_class[0])
    threads = max(1, min(count, workers or default_workers()))
    with blas_threads(1), ThreadPoolExecutor(threads) as pool:
        return list(tqdm(pool.map(fn, *per_class), total=count, desc=desc, leave=False,
                         unit="class", disable=desc is None or None))


def class_orders(labels: np.ndarray, balance: bool, greedy: Greedy, rng: np.random.Generator,
                 desc: str | None = None, workers: int | None = None) -> np.ndarray:
    """Score of the greedy orders run per class (``balance``) or once over all samples.

    Each class gets its own generator, spawned from ``rng`` in class order, so that concurrent
    classes draw reproducibly; the global run uses ``rng`` itself. Per-class orders are merged by
    rank within the class (first pick highest), so a balanced top-k per class takes exactly each
    class's first picks. Classes run concurrently (:func:`map_classes`); the result does not
    depend on ``workers``. ``greedy`` must not share mutable state across calls.
    """
    n = len(labels)
    if not balance:
        with tqdm(total=1, desc=desc, leave=False, unit="run", disable=desc is None or None) as bar:
            order = greedy(np.arange(n), rng)
            bar.update()
        return order_to_score(order, n)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]

    def run(group: np.ndarray, child: np.random.Generator) -> np.ndarray:
        return group[np.asarray(greedy(group, child), dtype=np.int64)]

    orders = map_classes(run, groups, rng.spawn(len(groups)), workers=workers, desc=desc)
    score = np.full(n, -np.inf)
    for order in orders:
        score[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    return score


# ----------------------------------------------------------------------------- optimizers


class GainFunction(Protocol):
    """A set function with state: marginal gains of candidates given the current set, and add."""

    n: int
    block: int  # how many candidates one ``gains`` call may take without a large temporary

    def gains(self, cand: np.ndarray) -> np.ndarray: ...

    def add(self, j: int) -> None: ...


def _bar(length: int, desc: str, show: bool) -> tqdm:
    return tqdm(total=length, desc=desc, leave=False, disable=not show or None, mininterval=1.0)


def _all_gains(fn: GainFunction, cand: np.ndarray) -> np.ndarray:
    out = np.empty(len(cand))
    for i in range(0, len(cand), fn.block):
        out[i : i + fn.block] = fn.gains(cand[i : i + fn.block])
    return out


def naive_greedy(fn: GainFunction, length: int, show: bool = False) -> np.ndarray:
    """Nemhauser et al. 1978: each step evaluates every remaining candidate and adds the best
    (lowest index on ties). (1 - 1/e)-optimal for monotone submodular f. O(length * n) gains."""
    gain = np.full(fn.n, -np.inf)
    left = np.ones(fn.n, dtype=bool)
    order = np.empty(length, dtype=np.int64)
    for t in range(length):
        gain[left] = _all_gains(fn, np.flatnonzero(left))
        j = int(np.argmax(gain))
        order[t], left[j], gain[j] = j, False, -np.inf
        fn.add(j)
    return order


def lazy_greedy(fn: GainFunction, length: int, show: bool = False) -> np.ndarray:
    """Minoux 1978: stale gains are upper bounds (submodularity), so only the candidate with the
    largest bound is re-evaluated until a fresh gain tops all bounds. Returns exactly the naive
    greedy order (ties to the lowest index: a fresh argmax beats every lower index strictly).

    Re-evaluations are batched (1, 2, 4, ... largest stale bounds) so that on-the-fly similarity
    rows are computed with matrix products. O(n) per re-evaluation round for the argmax; the number
    of gain evaluations is typically a small multiple of ``length`` (worst case as naive). Differs
    from DeepCore's ``LazyGreedy`` only in the batching and in never re-evaluating fresh gains.
    """
    bound = _all_gains(fn, np.arange(fn.n))
    fresh_at = np.zeros(fn.n, dtype=np.int64)  # the step at which bound[j] is the exact gain
    order = np.empty(length, dtype=np.int64)
    bar = _bar(length, "lazy greedy", show)
    for t in range(length):
        batch = 1
        while True:
            j = int(np.argmax(bound))
            if fresh_at[j] == t:
                break
            cand = _largest_stale(bound, fresh_at, t, j, batch)
            bound[cand], fresh_at[cand] = _all_gains(fn, cand), t
            batch = min(2 * batch, fn.block)
        order[t], bound[j] = j, -np.inf
        fn.add(j)
        bar.update()
    bar.close()
    return order


def _largest_stale(bound: np.ndarray, fresh_at: np.ndarray, t: int, j: int, k: int) -> np.ndarray:
    """j plus up to k - 1 other stale candidates with the largest bounds."""
    if k <= 1:
        return np.array([j])
    stale = np.flatnonzero((fresh_at != t) & np.isfinite(bound))
    top = stale[np.argpartition(-bound[stale], min(k, len(stale)) - 1)[:k]]
    return np.union1d(top, [j])


def stochastic_sample_size(n: int, t: int, epsilon: float) -> int:
    """Candidates evaluated at step t (1-based): ceil((n / t) ln(1 / epsilon)), the sample size of
    Mirzasoleiman et al. for a budget of k = t."""
    return max(1, math.ceil(n / t * math.log(1.0 / epsilon)))


def stochastic_greedy(fn: GainFunction, length: int, epsilon: float, rng: np.random.Generator,
                      show: bool = False) -> np.ndarray:
    """Stochastic greedy (Mirzasoleiman et al. 2015, "Lazier than lazy greedy"), prefix-consistent.

    Each step adds the best of a uniform sample of the remaining candidates. The paper sizes the
    sample once for a known budget k, s = ceil((n / k) ln(1 / epsilon)), which makes the order
    depend on k: a short run is not a prefix of a long one, and sizing it from a ratio-free length
    (k = n at ``max_ratio`` 1) gives s = 1 for epsilon 0.9, i.e. uniform random selection. Here
    step t samples :func:`stochastic_sample_size` (n, t) candidates, the paper's size for budget t.
    The paper's per-step bound, E[gain_t] >= (1 - epsilon) / k (f(OPT_k) - f(S_{t-1})), only
    needs s_t >= (n / k) ln(1 / epsilon), which holds for every t <= k; so EVERY prefix of length
    k is (1 - 1/e - epsilon)-optimal in expectation for budget k, and the order does not depend on
    ``length`` (same ``rng`` -> a longer run extends a shorter one). Cost: sum_t s_t =
    O(n ln(1/epsilon) ln(length)) gains, a factor H_length more than the paper's single budget
    (at step 1 with epsilon < 1/e every candidate is evaluated). DeepCore rounds s, draws with
    the global numpy RNG and reads cached gains in the wrong order for unsorted candidates.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon!r}: allowed values are in (0, 1)")
    left = np.ones(fn.n, dtype=bool)
    order = np.empty(length, dtype=np.int64)
    bar = _bar(length, "stochastic greedy", show)
    for t in range(length):
        remaining = np.flatnonzero(left)
        size = min(stochastic_sample_size(fn.n, t + 1, epsilon), len(remaining))
        cand = remaining if size == len(remaining) else \
            np.sort(rng.choice(remaining, size=size, replace=False))
        j = int(cand[np.argmax(_all_gains(fn, cand))])
        order[t], left[j] = j, False
        fn.add(j)
        bar.update()
    bar.close()
    return order


def maximize(fn: GainFunction, length: int, optimizer: str, *, epsilon: float = 0.9,
             rng: np.random.Generator | None = None, show: bool = False) -> np.ndarray:
    """Greedy order of ``length`` picks (positions 0..n-1) with the named optimizer: ``naive``
    (:func:`naive_greedy`), ``lazy`` (:func:`lazy_greedy`, DeepCore's default, same order as
    naive) or ``stochastic`` (:func:`stochastic_greedy`, seeded by ``rng``)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: allowed values are {', '.join(OPTIMIZERS)}")
    if optimizer == "naive":
        return naive_greedy(fn, length, show)
    if optimizer == "lazy":
        return lazy_greedy(fn, length, show)
    return stochastic_greedy(fn, length, epsilon, rng or np.random.default_rng(0), show)


