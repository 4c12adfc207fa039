"""DUAL's score and Beta sampler, and CCS's strata as a window over any score, against
hand-worked values, loops transcribed from the references and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreset import config
from coreset.scores import registry
from coreset.scores.samplers import beta_shape, beta_weights, mean_probability, strata_of
from coreset.scores.selection import budget, class_budgets, select
from helpers_selectors import make_ctx
from test_selectors_dynamics import reference_allocation

RNG = np.random.default_rng(0)


def dual_reference(p: np.ndarray, window: int) -> np.ndarray:
    """DUAL's reference ``dual(preds)`` as plain loops, on the assigned-label probability (E, N)
    of one model, without its constant factor 10."""
    scores = []
    for i in range(p.shape[0] - window + 1):
        w = p[i : i + window]
        scores.append(w.std(axis=0, ddof=1) * (1 - w.mean(axis=0)))
    return np.mean(scores, axis=0)


def test_dual_equals_the_reference_loops_over_the_first_trajectory_epochs():
    prob = RNG.uniform(0.0, 1.0, (2, 12, 7))  # 2 models, 12 epochs: only the first 8 count
    ctx = make_ctx(np.zeros(7, dtype=int), 2)
    ctx.epoch_prob = prob.astype(np.float32)
    got = registry.get("dual").fn(ctx, rng=RNG, balance=False, trajectory=8, window=3)
    p = prob.astype(np.float32).astype(np.float64)
    expected = (dual_reference(p[0, :8], 3) + dual_reference(p[1, :8], 3)) / 2
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="trajectory = 30 needs at least 30"):
        registry.get("dual").fn(ctx, rng=RNG, balance=False)


def test_dual_by_hand():
    # one window of 2 epochs, p = 0.2 then 0.6: std (ddof 1) = 0.2 sqrt 2, 1 - mean = 0.6
    ctx = make_ctx(np.zeros(1, dtype=int), 2)
    ctx.epoch_prob = np.array([[[0.2], [0.6]]], dtype=np.float64)
    got = registry.get("dual").fn(ctx, rng=RNG, balance=False, trajectory=2, window=2)
    assert got[0] == pytest.approx(0.2 * np.sqrt(2) * 0.6)


def test_beta_shape_by_hand():
    # anchor 0.8, prune rate 0.7, c_d 4: b = 15 * 0.2 * (1 - 0.7^4) = 3 * 0.7599
    a, b = beta_shape(0.8, 0.7, 4.0)
    assert b == pytest.approx(3 * (1 - 0.2401)) and a == pytest.approx(16 - b)
    # keeping everything (prune rate 0) puts b at 15 (1 - anchor)
    assert beta_shape(0.5, 0.0, 4.0) == pytest.approx((8.5, 7.5))


def test_beta_weights_use_the_anchor_of_the_highest_scores():
    from scipy.stats import beta

    scores = np.array([0.1, 0.9, 0.5, 0.8])
    d = np.array([0.3, 0.6, 0.2, 0.9])
    w = beta_weights(scores, d, ratio=0.5, c_d=2.0, anchor=2)  # anchor over samples 1 and 3
    a, b = 16 - 15 * (1 - 0.75) * (1 - 0.25), 15 * (1 - 0.75) * (1 - 0.25)
    np.testing.assert_allclose(w, beta.pdf(d, a, b) * scores, rtol=1e-12)


def test_beta_window_draws_in_proportion_to_the_weights():
    """k = 1 of 4: each sample is drawn with probability weight / total (DUAL's np.random.choice
    with p = joint_p / joint_p.sum())."""
    scores = np.array([0.2, 0.4, 0.6, 0.8])
    d = np.array([0.5, 0.6, 0.7, 0.8])
    params = {"c_d": 4.0, "anchor": 2, "trajectory": 1}
    ratio = 0.25
    w = beta_weights(scores, d, ratio, c_d=4.0, anchor=2)
    rng = np.random.default_rng(5)
    hits = np.zeros(4)
    for _ in range(4000):
        hits[select(scores, np.zeros(4, int), ratio, "beta", False, rng, params, d)] += 1
    np.testing.assert_allclose(hits / hits.sum(), w / w.sum(), atol=0.03)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(12, 80), ratio=st.floats(0.05, 1.0), classes=st.integers(1, 3),
       balance=st.booleans(), seed=st.integers(0, 2**16))
def test_beta_window_keeps_the_budget_and_never_a_zero_weight(n, ratio, classes, balance, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    scores = rng.uniform(0.0, 1.0, n)
    scores[rng.choice(n, n // 10, replace=False)] = 0.0  # never drawn
    d = rng.uniform(0.01, 0.99, n)
    params = {"c_d": 4.0, "anchor": 10, "trajectory": 1}
    try:
        idx = select(scores, labels, ratio, "beta", balance, rng, params, d)
    except ValueError as err:  # more asked for than samples with a weight: said, not filled
        assert "positive weight" in str(err) or "keeps no sample" in str(err)
        return
    expected = class_budgets(np.bincount(labels), ratio) if balance else [budget(n, ratio)]
    assert len(idx) == sum(expected) and len(np.unique(idx)) == len(idx)
    assert (scores[idx] > 0).all()
    if balance:
        assert np.bincount(labels[idx], minlength=classes).tolist() == list(expected)


def test_beta_window_refuses_negative_scores_and_needs_the_difficulty():
    labels = np.zeros(5, dtype=int)
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        select(np.array([-1.0, 0, 1, 2, 3]), labels, 0.4, "beta", False, RNG, {}, np.full(5, .5))
    with pytest.raises(ValueError, match="mean assigned-label probability"):
        select(np.arange(5.0), labels, 0.4, "beta", False, RNG, {}, None)


def test_mean_probability_over_the_first_epochs_and_models():
    prob = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    np.testing.assert_allclose(mean_probability(prob, 2), prob[:, :2].mean(axis=(0, 1)))
    with pytest.raises(ValueError, match="trajectory = 5 needs at least 5"):
        mean_probability(prob, 5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 60), k=st.integers(1, 6), cut=st.sampled_from([0.0, 0.1, 0.3]),
       seed=st.integers(0, 2**16))
def test_strata_window_is_ccs_over_the_given_score(n, k, cut, seed):
    """The hard cut drops floor(cut n) highest scores; the kept per stratum follow CCS's
    bin_allocate at every budget; selections at growing ratios are nested."""
    rng_scores = np.random.default_rng(seed)
    scores = rng_scores.normal(size=n)
    labels = np.zeros(n, dtype=int)
    params = {"strata": k, "hard_cut": cut}
    dropped = np.argsort(-scores, kind="stable")[: int(np.floor(cut * n))]
    rest = np.setdiff1d(np.arange(n), dropped)
    stratum = dict(zip(rest.tolist(), strata_of(scores[rest], k).tolist(), strict=True))
    sizes = np.bincount(list(stratum.values()), minlength=k).tolist()
    previous: set[int] = set()
    for ratio in (0.1, 0.3, 0.5, 0.7):
        m = budget(n, ratio)
        if m > len(rest):
            with pytest.raises(ValueError, match="hard_cut"):
                select(scores, labels, ratio, "strata", False, np.random.default_rng(1), params)
            continue
        idx = select(scores, labels, ratio, "strata", False, np.random.default_rng(1), params)
        assert not np.isin(idx, dropped).any() and len(idx) == m
        taken = np.bincount([stratum[int(i)] for i in idx], minlength=k).tolist()
        assert taken == reference_allocation(m, sizes)
        assert previous <= set(idx.tolist())
        previous = set(idx.tolist())


def _recipe(node: dict):
    return config._recipe("recipes.r", "r", {"method": "el2n", "balance": False,
                                            "params": {}, **node})


def test_window_params_are_checked_with_the_key_named():
    assert _recipe({"window": "strata"}).window_params == {"strata": 50, "hard_cut": 0.1}
    assert _recipe({"window": "beta", "window_params": {"c_d": 2}}).window_params == \
        {"c_d": 2.0, "trajectory": 30, "anchor": 10}
    with pytest.raises(config.ConfigError, match=r"recipes\.r\.window_params\.cd = 2 .*c_d"):
        _recipe({"window": "beta", "window_params": {"cd": 2}})
    with pytest.raises(config.ConfigError, match=r"window_params\.strata = 2 .*only strata"):
        _recipe({"window": "top", "window_params": {"strata": 2}})
    with pytest.raises(config.ConfigError, match=r"window_params\.hard_cut = 1\.0"):
        _recipe({"window": "strata", "window_params": {"hard_cut": 1.0}})
    assert _recipe({"window": "top"}).window_params == {}
