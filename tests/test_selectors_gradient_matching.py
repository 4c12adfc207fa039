"""CRAIG, GRAD-MATCH and GLISTER on synthetic last-layer gradients."""

from __future__ import annotations

import numpy as np
import pytest

from coreset.scores import gradient_matching as gm
from coreset.scores import kernels as kn
from coreset.scores import registry
from coreset.scores import submodular as sm
from coreset.scores.context import ScoringContext
from coreset.scores.registry import REGISTRY

NAMES = ("craig", "gradmatch", "glister")


def make_ctx(n: int = 120, c: int = 3, d: int = 5, seed: int = 0, scale: float = 1.0,
             ) -> ScoringContext:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % c)
    features = (scale * rng.standard_normal((n, d))).astype(np.float32)
    logits = rng.standard_normal((1, n, c))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loss = -np.log(probs[:, np.arange(n), labels])
    return ScoringContext(
        labels=labels, num_classes=c, features=features, probs=probs.astype(np.float32),
        loss=loss.astype(np.float32), correct=rng.random((1, 2, n)) < 0.5,
        epoch_loss=rng.random((1, 2, n)).astype(np.float32),
    )


def grads(ctx: ScoringContext, idx: np.ndarray) -> np.ndarray:
    return ctx.last_layer_grads(idx).astype(np.float64)


def top(score: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    return idx[np.argsort(-score[idx], kind="stable")[:k]]


# ----------------------------------------------------------------------------- GRAD-MATCH


def matching_error(gs: np.ndarray, w: np.ndarray, g: np.ndarray, lam: float) -> float:
    """The GRAD-MATCH objective ||gs^T w - sum g||^2 + lam ||w||^2 (gs: the subset's rows of g)."""
    return float(np.sum((w @ gs - g.sum(0)) ** 2) + lam * w @ w)


def brute_force_omp(a: np.ndarray, length: int, lam: float) -> list[int]:
    """OMP with an explicit ridge re-solve of the weights at every step."""
    target, chosen, resid = a.sum(0), [], a.sum(0)
    for _ in range(length):
        proj = a @ resid
        proj[chosen] = -np.inf
        chosen.append(int(np.argmax(proj)))
        s = a[chosen]
        x = np.linalg.solve(s @ s.T + lam * np.eye(len(chosen)), s @ target)
        resid = target - x @ s
    return chosen


@pytest.mark.parametrize("grad_kind", ["full_last_layer", "bias"])
def test_omp_equals_brute_force_ridge_omp(grad_kind):
    ctx = make_ctx(n=60, c=2)
    idx = np.flatnonzero(ctx.labels == 0)
    a = grads(ctx, idx) if grad_kind == "full_last_layer" else ctx.bias_grads(idx).astype(float)
    expected = brute_force_omp(a, 20, lam=0.5)
    emb = gm.grad_embedding(ctx, grad_kind, idx)
    np.testing.assert_array_equal(gm.omp_order_dual(emb, 20, 0.5, 1 << 30), expected)
    np.testing.assert_array_equal(gm.omp_order_dual(emb, 20, 0.5, 0), expected)
    if grad_kind == "bias":
        np.testing.assert_array_equal(gm.omp_order_primal(a, 20, 0.5), expected)


@pytest.mark.parametrize("grad_kind", ["full_last_layer", "bias"])
def test_gradmatch_matches_class_gradient_better_than_random_subsets(grad_kind):
    ctx = make_ctx(n=300, c=3, d=4)
    rng = np.random.default_rng(1)
    score = gm.gradmatch(ctx, rng=rng, balance=True, grads=grad_kind, max_ratio=0.05)
    for c in range(3):
        idx = np.flatnonzero(ctx.labels == c)
        g = grads(ctx, idx) if grad_kind == "full_last_layer" else ctx.bias_grads(idx)
        picked = top(score, idx, 5)
        w = gm.gradmatch_weights(ctx, picked, grads=grad_kind)
        ours = matching_error(g[np.searchsorted(idx, picked)], w, g, 1.0)
        random_errors = []
        for _ in range(20):
            sub = np.sort(rng.choice(idx, 5, replace=False))
            w_sub = gm.gradmatch_weights(ctx, sub, grads=grad_kind)  # optimal weights, too
            random_errors.append(matching_error(g[np.searchsorted(idx, sub)], w_sub, g, 1.0))
        assert ours < min(random_errors)
        assert (w >= 0).all() and w.sum() > 0


def test_gradmatch_weights_solve_the_nonnegative_ridge_problem():
    """KKT conditions of min_{w >= 0} ||gs^T w - sum g||^2 + lam ||w||^2, with an active bound
    (DeepCore's NNLS on the normal equations violates them)."""
    ctx = make_ctx(n=90, c=3)
    sel = np.flatnonzero(ctx.labels == 1)[:8]
    w = gm.gradmatch_weights(ctx, sel, lam=0.3)
    g = grads(ctx, np.flatnonzero(ctx.labels == 1))
    gs = g[:8]
    grad = gs @ (w @ gs - g.sum(0)) + 0.3 * w  # half the objective's gradient
    assert (w == 0).any() and (w > 0).any()
    np.testing.assert_allclose(grad[w > 0], 0, atol=1e-6)
    assert (grad[w == 0] >= -1e-6).all()
    assert matching_error(gs, w, g, 0.3) < matching_error(gs, np.zeros(8), g, 0.3)


# ----------------------------------------------------------------------------- CRAIG


@pytest.mark.parametrize("balance", [True, False])
def test_craig_weights_are_positive_integers_summing_to_class_sizes(balance):
    ctx = make_ctx(n=150, c=3)
    score = gm.craig(ctx, rng=np.random.default_rng(0), balance=balance, max_ratio=0.2)
    sel = np.flatnonzero(np.isfinite(score))
    w = gm.craig_weights(ctx, sel)
    assert (w >= 1).all() and np.array_equal(w, np.round(w))
    for c in np.unique(ctx.labels[sel]):
        assert w[ctx.labels[sel] == c].sum() == (ctx.labels == c).sum()
    # a subset that misses a class: weights sum to the size of the classes it covers
    part = sel[ctx.labels[sel] != 2]
    assert gm.craig_weights(ctx, part).sum() == (ctx.labels != 2).sum()


def test_craig_weights_count_nearest_selected_gradients():
    ctx = make_ctx(n=60, c=2)
    idx = np.flatnonzero(ctx.labels == 0)
    sel = idx[[3, 10, 17]]
    g = grads(ctx, idx)
    dist = np.linalg.norm(g[:, None, :] - g[None, [3, 10, 17], :], axis=2)
    expected = np.bincount(dist.argmin(axis=1), minlength=3)
    np.testing.assert_array_equal(gm.craig_weights(ctx, sel), expected)


def test_craig_weights_stay_positive_for_duplicate_selected_samples():
    ctx = make_ctx(n=60, c=2)
    a, b = np.flatnonzero(ctx.labels == 0)[:2]
    ctx.features[b], ctx.probs[:, b] = ctx.features[a], ctx.probs[:, a]  # exact duplicates
    w = gm.craig_weights(ctx, np.array([a, b]))
    assert (w >= 1).all() and w.sum() == (ctx.labels == 0).sum()


def test_craig_balanced_is_facility_location_on_euclidean_gradients():
    ctx = make_ctx()
    rng = np.random.default_rng(0)
    craig = gm.craig(ctx, rng=rng, balance=True, max_ratio=0.5)
    fl = sm.facility_location(ctx, rng=rng, balance=True, space="gradients", metric="euclidean",
                              max_ratio=0.5)
    np.testing.assert_array_equal(craig, fl)


def test_craig_global_equals_naive_greedy_on_block_diagonal_similarity():
    ctx = make_ctx(n=60, c=3)
    score = gm.craig(ctx, rng=np.random.default_rng(0), balance=False, max_ratio=0.5)
    s = np.zeros((60, 60))
    for c in range(3):
        idx = np.flatnonzero(ctx.labels == c)
        sim = kn.Similarity(gm.grad_embedding(ctx, "full_last_layer", idx), "euclidean")
        s[np.ix_(idx, idx)] = sim.rows(np.arange(len(idx)))
    cur, order = np.zeros(60), []
    for _ in range(30):
        gain = np.maximum(s - cur[:, None], 0).sum(axis=0)
        gain[order] = -np.inf
        order.append(int(np.argmax(gain)))
        cur = np.maximum(cur, s[:, order[-1]])
    np.testing.assert_array_equal(np.argsort(-score, kind="stable")[:30], order)
    assert np.isfinite(score).sum() == 30


# ----------------------------------------------------------------------------- GLISTER


def brute_force_glister(ctx: ScoringContext, idx: np.ndarray, length: int, eta: float,
                        update: bool = True) -> list[int]:
    """GLISTER greedy with explicit (C + C D) gradients and an explicit last-layer SGD step."""
    c, d = ctx.num_classes, ctx.features.shape[1]
    g = grads(ctx, idx)
    h, y = ctx.features[idx].astype(float), ctx.onehot(idx)
    logits0 = np.log(ctx.probs[0, idx].astype(float))
    chosen, val = [], None
    for _ in range(length):
        if val is None or update:
            step = g[chosen].mean(0) if chosen else np.zeros(c + c * d)
            logits = logits0 - eta * (step[:c] + h @ step[c:].reshape(c, d).T)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            b = p - y
            val = np.concatenate([b.mean(0), (b[:, :, None] * h[:, None, :]).mean(0).ravel()])
        gain = g @ val
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
    return chosen


def test_glister_equals_brute_force_with_validation_updates():
    ctx = make_ctx(n=90, c=3, scale=2.0)
    score = gm.glister(ctx, rng=np.random.default_rng(0), balance=True, eta=2.0, max_ratio=0.5)
    for c in range(3):
        idx = np.flatnonzero(ctx.labels == c)
        expected = idx[brute_force_glister(ctx, idx, 15, eta=2.0)]
        np.testing.assert_array_equal(top(score, idx, 15), expected)


def test_glister_first_pick_maximises_validation_gradient_inner_product():
    ctx = make_ctx(n=90, c=3)
    score = gm.glister(ctx, rng=np.random.default_rng(0), balance=True)
    for c in range(3):
        idx = np.flatnonzero(ctx.labels == c)
        g = grads(ctx, idx)
        assert top(score, idx, 1)[0] == idx[int(np.argmax(g @ g.mean(0)))]


def test_glister_differs_from_the_no_update_variant():
    """DeepCore never updates the validation gradient (a typo): its order is the top-k of the
    initial gains. Ours updates after every pick, which reorders a constructed case."""
    ctx = make_ctx(n=90, c=3, scale=2.0)
    rng = np.random.default_rng(0)
    score = gm.glister(ctx, rng=rng, balance=True, eta=2.0, max_ratio=0.5)
    frozen = gm.glister(ctx, rng=rng, balance=True, eta=0.0, max_ratio=0.5)  # no model step
    differs = 0
    for c in range(3):
        idx = np.flatnonzero(ctx.labels == c)
        g = grads(ctx, idx)
        static = idx[np.argsort(-(g @ g.mean(0)), kind="stable")[:15]]
        np.testing.assert_array_equal(top(frozen, idx, 15), static)
        np.testing.assert_array_equal(
            top(score, idx, 15), idx[brute_force_glister(ctx, idx, 15, 2.0)])
        differs += not np.array_equal(top(score, idx, 15), static)
        assert brute_force_glister(ctx, idx, 15, 2.0, update=False) == list(
            np.searchsorted(idx, static))
    assert differs >= 2


def test_glister_holdout_is_seeded_and_bias_mode_runs():
    ctx = make_ctx(n=120, c=3)
    kw = dict(balance=True, validation="holdout", holdout_fraction=0.3, max_ratio=0.4)
    a = gm.glister(ctx, rng=np.random.default_rng(5), **kw)
    b = gm.glister(ctx, rng=np.random.default_rng(5), **kw)
    np.testing.assert_array_equal(a, b)
    c = gm.glister(ctx, rng=np.random.default_rng(5), balance=True, max_ratio=0.4)
    assert not np.array_equal(a, c)
    bias = gm.glister(ctx, rng=np.random.default_rng(5), balance=False, grads="bias")
    assert np.isfinite(bias).all() and len(np.unique(bias)) == 120


# ----------------------------------------------------------------------------- all three


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("balance", [True, False])
def test_scores_are_deterministic_ratio_free_prefixes(name, balance):
    ctx = make_ctx()
    fn = REGISTRY[name].fn
    full = fn(ctx, rng=np.random.default_rng(0), balance=balance)
    again = fn(ctx, rng=np.random.default_rng(0), balance=balance)
    part = fn(ctx, rng=np.random.default_rng(0), balance=balance, max_ratio=0.25)
    np.testing.assert_array_equal(full, again)
    assert np.isfinite(full).all()
    groups = [np.flatnonzero(ctx.labels == c) for c in range(3)] if balance else [np.arange(120)]
    for g in groups:
        k = int(np.ceil(0.25 * len(g)))
        assert np.isfinite(part[g]).sum() == k
        np.testing.assert_array_equal(top(full, g, k), top(part, g, k))


def test_registration_weighers_and_parameter_errors():
    ctx = make_ctx()
    for name in NAMES:
        spec = REGISTRY[name]
        assert spec.family == "gradient_matching" and spec.balance and not spec.needs_model
        assert spec.defaults["max_ratio"] == 1.0 and spec.defaults["grads"] == "full_last_layer"
    sel = np.arange(0, 120, 7)
    for name in ("craig", "gradmatch"):
        spec = REGISTRY[name]
        w = spec.weigher(ctx, sel, **spec.defaults)
        assert w.shape == sel.shape and (w >= 0).all()
    assert REGISTRY["glister"].weigher is None
    assert REGISTRY["gradmatch"].defaults["lam"] == 1.0
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="grads"):
        gm.gradmatch(ctx, rng=rng, balance=True, grads="all")
    with pytest.raises(ValueError, match="validation"):
        gm.glister(ctx, rng=rng, balance=True, validation="test")
    with pytest.raises(ValueError, match="holdout_fraction"):
        gm.glister(ctx, rng=rng, balance=True, validation="holdout", holdout_fraction=0.0)


def test_kept_gradmatch_samples_all_have_positive_weights():
    """NNLS zeroes some weights; a zero-weight sample is not part of the weighted subset, so the
    kept list drops it (SelectorSpec.weigh) instead of counting it as kept."""
    from coreset.scores.selection import select

    spec = REGISTRY["gradmatch"]
    ctx = make_ctx(seed=3, scale=3.0, n=300)  # a case where NNLS zeroes 1 of the 30 kept
    score = spec.fn(ctx, rng=np.random.default_rng(0), balance=True)
    sel = select(score, ctx.labels, 0.1, "top", True, np.random.default_rng(0))
    raw = gm.gradmatch_weights(ctx, sel)
    assert (raw == 0).sum() == 1
    kept, w = spec.weigh(ctx, sel, {})
    np.testing.assert_array_equal(kept, sel[raw > 0])
    np.testing.assert_array_equal(w, raw[raw > 0].astype(np.float32))
    assert len(kept) == 29 and (w > 0).all()
    craig = REGISTRY["craig"]
    ctx = make_ctx()
    sel = np.arange(0, 120, 7)
    kept, w = craig.weigh(ctx, sel, {})
    np.testing.assert_array_equal(kept, sel)  # CRAIG's weights are counts >= 1: nothing dropped
    kept, w = registry.get("el2n").weigh(ctx, sel, {})
    np.testing.assert_array_equal(kept, sel)
    assert w.dtype == np.float32 and (w == 1).all()
