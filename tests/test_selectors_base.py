"""The pipeline issue's selectors (moderate, herding, k-center, EL2N, GraNd, forgetting, loss,
random) against hand-worked or brute-force answers."""

import itertools

import numpy as np
import pytest

from coreset.scores.geometry import herding_order, kcenter_order
from coreset.scores.registry import get
from coreset.scores.selection import select
from helpers_selectors import make_ctx

RNG = np.random.default_rng(0)


def run(name, ctx, balance=None, **params):
    spec = get(name)
    balance = spec.balance if balance is None else balance
    return spec.fn(ctx, rng=np.random.default_rng(0), balance=balance, **params)


# --- Moderate-DS -------------------------------------------------------------------------------

# 1-D features. class 0: 0, 1, 2, 3, 10 (median 2, mean 3.2); class 1: 100, 101, 105 (median 101,
# mean 102).
FEATURES = np.array([[0.0], [1], [2], [3], [10], [100], [101], [105]])
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize(
    ("center", "distances", "kept"),
    [
        # median distances 2,1,0,1,8 | 1,0,4; ascending ranks [2, 6) of 8 -> idx 1, 3, 5, 0
        ("median", [2, 1, 0, 1, 8, 1, 0, 4], [0, 1, 3, 5]),
        # mean distances 3.2,2.2,1.2,0.2,6.8 | 2,1,3; ranks [2, 6) -> idx 2, 5, 1, 7
        ("mean", [3.2, 2.2, 1.2, 0.2, 6.8, 2, 1, 3], [1, 2, 5, 7]),
    ],
)
def test_moderate_hand_worked(center, distances, kept):
    ctx = make_ctx(LABELS, 2, features=FEATURES)
    score = run("moderate", ctx, center=center)
    np.testing.assert_allclose(score, distances)
    spec = get("moderate")
    assert (spec.window, spec.balance) == ("moderate", False)  # the reference: global band
    idx = select(score, LABELS, 0.5, spec.window, spec.balance, RNG)
    assert idx.tolist() == kept


# --- Herding -----------------------------------------------------------------------------------

def brute_herding(x, length):
    mu, chosen = x.mean(0), []
    for _ in range(length):
        rest = [j for j in range(len(x)) if j not in chosen]
        errs = [np.linalg.norm(mu - x[[*chosen, j]].mean(0)) for j in rest]
        chosen.append(rest[int(np.argmin(errs))])
    return chosen


def test_herding_equals_brute_force():
    x = np.random.default_rng(1).normal(size=(30, 5))
    assert herding_order(x, 12).tolist() == brute_herding(x, 12)


def test_herding_running_mean_error_decreases():
    x = np.random.default_rng(2).normal(size=(200, 8))
    order = herding_order(x, 60)
    errs = [np.linalg.norm(x.mean(0) - x[order[: t + 1]].mean(0)) for t in range(60)]
    # herding's error decays like O(1/t); random subsets like O(1/sqrt(t))
    assert errs[-1] < errs[4] < errs[0]
    rand = [np.linalg.norm(x.mean(0) - x[np.random.default_rng(s).choice(200, 60, replace=False)]
                           .mean(0)) for s in range(20)]
    assert errs[-1] < min(rand)


def test_herding_is_per_class_when_balanced():
    x = np.random.default_rng(3).normal(size=(40, 3))
    labels = np.repeat([0, 1], 20)
    score = run("herding", make_ctx(labels, 2, features=x))
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(-score[idx], kind="stable")]
        assert order.tolist() == idx[brute_herding(x[idx], 20)].tolist()


# --- k-Center Greedy ---------------------------------------------------------------------------

def radius(x, centers):
    return np.max(np.min(np.linalg.norm(x[:, None] - x[centers][None], axis=2), axis=1))


def test_kcenter_equals_brute_force_greedy():
    x = np.random.default_rng(4).normal(size=(40, 3))
    order = kcenter_order(x, 10, first=7).tolist()
    chosen = [7]
    for _ in range(9):
        dist = np.min(np.linalg.norm(x[:, None] - x[chosen][None], axis=2), axis=1)
        chosen.append(int(np.argmax(dist)))
    assert order == chosen


def test_kcenter_radius_within_twice_optimum():
    x = np.random.default_rng(5).normal(size=(12, 2))
    for k in (2, 3, 4):
        optimum = min(radius(x, list(c)) for c in itertools.combinations(range(12), k))
        assert radius(x, kcenter_order(x, k, first=0)) <= 2 * optimum + 1e-12


def test_kcenter_handles_duplicates_without_repeats():
    x = np.zeros((5, 2))
    order = kcenter_order(x, 5, first=2)
    assert sorted(order.tolist()) == list(range(5))


def test_greedy_max_ratio_limits_the_order():
    x = np.random.default_rng(6).normal(size=(50, 2))
    score = run("kcenter", make_ctx(np.zeros(50, dtype=int), 1, features=x), max_ratio=0.2)
    assert np.isfinite(score).sum() == 10  # ceil(0.2 * 50): exactly what select needs at 0.2
    assert len(select(score, np.zeros(50, dtype=int), 0.2, "top", False, RNG)) == 10


# --- Importance scores -------------------------------------------------------------------------

def test_el2n_and_loss_hand_worked():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    labels = np.array([0, 0, 1])
    ctx = make_ctx(labels, 2, probs=probs)
    np.testing.assert_allclose(run("el2n", ctx), [np.sqrt(0.02), np.sqrt(0.5), np.sqrt(0.08)],
                               rtol=1e-6)
    np.testing.assert_allclose(run("loss", ctx), -np.log([0.9, 0.5, 0.8]), rtol=1e-6)
    # the hardest (the 50/50 sample) is kept first by the default top window
    assert select(run("el2n", ctx), labels, 1 / 3, "top", False, RNG).tolist() == [1]


def test_el2n_averages_over_models():
    p1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    p2 = np.array([[0.0, 1.0], [0.0, 1.0]])
    ctx = make_ctx(np.array([0, 1]), 2, probs=np.stack([p1, p2]))
    np.testing.assert_allclose(run("el2n", ctx), [np.sqrt(2) / 2, 0.0], atol=1e-7)
    np.testing.assert_allclose(run("el2n", ctx, models="first"), [0.0, 0.0], atol=1e-7)


def test_grand_last_layer_closed_form_equals_autograd():
    import torch

    rng = np.random.default_rng(7)
    h = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    layer = torch.nn.Linear(4, 3)
    probs = torch.softmax(layer(torch.from_numpy(h)), 1).detach().numpy()
    ctx = make_ctx(labels, 3, features=h, probs=probs)
    expected = []
    for i in range(6):
        layer.zero_grad()
        out = layer(torch.from_numpy(h[i : i + 1]))
        torch.nn.functional.cross_entropy(out, torch.tensor([labels[i]])).backward()
        expected.append(float((layer.weight.grad.square().sum() + layer.bias.grad.square().sum())
                              .sqrt()))
    np.testing.assert_allclose(run("grand", ctx), expected, rtol=1e-5)


def test_forgetting_counts_events_and_never_learned():
    labels = np.zeros(4, dtype=int)
    ctx = make_ctx(labels, 2, epochs=5)
    ctx.correct[0] = np.array([
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 1, 1, 0],
    ], dtype=bool)
    # sample 0: correct->wrong twice; 1: never forgotten; 2: once; 3: never learned
    np.testing.assert_array_equal(run("forgetting", ctx), [2, 0, 1, 5])
    np.testing.assert_array_equal(run("forgetting", ctx, never_learned="zero"), [2, 0, 1, 0])


def test_random_scores_are_seeded_and_uniform():
    ctx = make_ctx(np.zeros(1000, dtype=int), 1)
    a, b = run("random", ctx), run("random", ctx)
    assert np.array_equal(a, b)
    assert 0.45 < a.mean() < 0.55
