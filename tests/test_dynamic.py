"""Dynamic selection planners (RS2, InfoBatch), the training budget and the protocol line."""

from __future__ import annotations

import numpy as np
import pytest

from coreset.training.dynamic import RS2, InfoBatch, budget, make_planner, progress, protocol_line


def plans(planner, epochs: int) -> list[np.ndarray]:
    return [planner.plan(e)[0] for e in range(epochs)]


def test_rs2_covers_the_pool_once_per_cycle_without_repeats():
    pool = np.arange(100, 110)  # a static selection: global indices
    epochs = plans(RS2(pool, ratio=0.3, seed=0), 12)
    assert all(len(e) == 3 and len(set(e)) == 3 and set(e) <= set(pool) for e in epochs)
    # ceil(10 / 3) = 4 epochs cover every sample; the first 3 repeat none
    assert set(np.concatenate(epochs[:4])) == set(pool)
    assert len(set(np.concatenate(epochs[:3]))) == 9
    # the 4th epoch takes the one sample left, then two of a fresh permutation that are not it


def test_rs2_epochs_partition_the_pool_when_the_ratio_divides_it():
    pool = np.array([3, 7, 11, 20, 21, 40, 41, 42, 50, 60])
    epochs = plans(RS2(pool, ratio=0.2, seed=5), 15)
    for cycle in range(3):
        block = np.concatenate(epochs[5 * cycle : 5 * cycle + 5])
        assert sorted(block.tolist()) == pool.tolist()
    assert [e.tolist() for e in epochs[:5]] != [e.tolist() for e in epochs[5:10]]


def test_planners_are_deterministic_for_a_seed():
    pool = np.arange(50)
    a, b = plans(RS2(pool, 0.1, seed=3), 6), plans(RS2(pool, 0.1, seed=3), 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in
                   zip(a, plans(RS2(pool, 0.1, seed=4), 6), strict=True))
    i1, i2 = InfoBatch(pool, 10, seed=1), InfoBatch(pool, 10, seed=1)
    losses = np.linspace(0, 1, 50)
    for p in (i1, i2):
        p.update(pool, losses)
    assert np.array_equal(i1.plan(2)[0], i2.plan(2)[0])


def expectation(planner: InfoBatch, losses: np.ndarray, epochs: range) -> set:
    """The distinct (kept samples, weights) outcomes of plan() over many epoch draws."""
    outcomes = set()
    for e in epochs:
        idx, w = planner.plan(e)
        outcomes.add(tuple(zip(idx.tolist(), w.tolist(), strict=True)))
    return outcomes


def test_infobatch_expected_loss_is_the_full_loss_by_hand():
    # losses 0.1, 0.2, 1.0, 2.0 (mean 0.825): samples 0 and 1 are well learned; prune 0.5 keeps
    # one of them with weight 2. The two equally likely plans give 2 * 0.1 + 1 + 2 = 3.2 and
    # 2 * 0.2 + 1 + 2 = 3.4: their mean, 3.3, is the full sum 0.1 + 0.2 + 1 + 2.
    pool = np.array([10, 11, 12, 13])
    losses = np.array([0.1, 0.2, 1.0, 2.0])
    ib = InfoBatch(pool, epochs=1000, seed=0)
    ib.update(pool[::-1], losses[::-1])  # update maps global indices back to pool positions
    outcomes = expectation(ib, losses, range(1, 60))
    assert outcomes == {((10, 2.0), (12, 1.0), (13, 1.0)), ((11, 2.0), (12, 1.0), (13, 1.0))}
    loss = dict(zip(pool.tolist(), losses, strict=True))
    totals = [sum(w * loss[i] for i, w in o) for o in outcomes]
    assert np.mean(totals) == pytest.approx(losses.sum())


def test_infobatch_weight_is_the_inverse_inclusion_probability():
    # three well learned (0, 0, 0 < mean) and prune 0.5: keep round-half-up(1.5) = 2 of 3 with
    # weight 3 / 2; each is kept in 2 of the 3 equally likely pairs: E[w 1{kept}] = 1
    pool = np.arange(5)
    ib = InfoBatch(pool, epochs=1000, seed=0)
    ib.update(pool, np.array([0.0, 0.0, 0.0, 5.0, 5.0]))
    outcomes = expectation(ib, None, range(1, 80))
    assert len(outcomes) == 3
    for o in outcomes:
        assert [w for i, w in o if i < 3] == [1.5, 1.5] and [w for i, w in o if i >= 3] == [1, 1]


def test_infobatch_first_and_annealing_epochs_are_full():
    pool = np.arange(8)
    ib = InfoBatch(pool, epochs=16, seed=0, prune=0.5, anneal=0.125)
    idx, w = ib.plan(0)  # equal initial losses: nothing is below the mean
    assert idx.tolist() == pool.tolist() and (w == 1).all()
    ib.update(pool, np.arange(8.0))
    assert len(ib.plan(13)[0]) == 6  # 4 below the mean 3.5, half of them dropped
    for epoch in (14, 15):  # round-half-up(0.125 * 16) = 2 annealing epochs
        idx, w = ib.plan(epoch)
        assert idx.tolist() == pool.tolist() and (w == 1).all()
    assert ib.epoch_size(13) is None and ib.epoch_size(14) == 8


def test_make_planner_and_static():
    pool = np.array([2, 5])
    idx, w = make_planner("none", pool, epochs=3, seed=0).plan(1)
    assert idx.tolist() == [2, 5] and w.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"train\.dynamic = 'rs3' is not allowed: one of none"):
        make_planner("rs3", pool, epochs=3, seed=0)


def test_budget_epochs_and_steps():
    b = budget("epochs", n=100, batch_size=32, epochs=10)
    assert (b.epochs, b.steps_per_epoch, b.total_steps) == (10, 4, 40)
    # CCS: a fixed number of steps whatever the subset size
    small, large = budget("steps", 100, 32, 10, steps=10), budget("steps", 1000, 32, 10, steps=10)
    assert (small.epochs, small.total_steps) == (3, 10) and (large.epochs, large.total_steps) == (
        1, 10)
    assert progress(5, 10) == 0.5 and progress(12, 10) == 1.0
    with pytest.raises(ValueError, match=r"train\.steps = 0 is not allowed"):
        budget("steps", 100, 32, 10, steps=0)
    with pytest.raises(ValueError, match=r"train\.budget = 'iters' is not allowed"):
        budget("iters", 100, 32, 10)


def test_protocol_line():
    assert protocol_line(epochs=200, batch_size=128) == (
        "Protocol: 200 epochs over the subset, batch 128, final-epoch accuracy.")
    assert protocol_line(budget_mode="steps", epochs=200, steps=40000, batch_size=256,
                         report="best", dynamic="rs2", dynamic_ratio=0.1) == (
        "Protocol: 40000 SGD steps whatever the subset size, batch 256, best-epoch accuracy "
        "(test-set selection); dynamic: RS2 without replacement, 10 % per epoch.")
